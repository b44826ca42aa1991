"""A county's words told apart from a bare thank-you, on replies in the shapes Foxmail, Outlook,
QQ mail (HTML only) and the 163 web client write them."""
import pytest

from parsers.email_message import parse_email
from parsers.reply_text import html_text, judge_words, own_words, read_words
from pipeline.sample_mail import REPLY_CLIENTS, client_reply

OURS = "zzdztxhrj@163.com"
QUESTION = "罗老师您好，请问调研报告是否有字数要求？"


def words_of(client: str, typed: str):
    parsed = parse_email(client_reply(client, "hetang@example.cn", OURS, typed, in_reply_to="<r1@163.com>"))
    return read_words(parsed.text, parsed.html)


@pytest.mark.parametrize("client", REPLY_CLIENTS)
def test_a_question_is_kept_without_the_quote_or_the_signature(client):
    words = words_of(client, QUESTION)
    assert words.verdict == "question"
    assert words.text == QUESTION   # no 原始邮件, no 张敏 / 电话 / 写道, no "> 已受理"


@pytest.mark.parametrize("client", REPLY_CLIENTS)
@pytest.mark.parametrize("typed", ["收到，谢谢", "好的", "收到", "谢谢！", "ok", "收到了，谢谢罗老师！", "好的，辛苦了"])
def test_a_bare_thank_you_is_thanks(client, typed):
    assert words_of(client, typed).verdict == "thanks"


@pytest.mark.parametrize("client", REPLY_CLIENTS)
def test_a_request_without_a_question_mark_still_reaches_a_person(client):
    typed = "收到。张三的工作单位写错了，应为株洲市荷塘区大数据中心，麻烦帮忙改一下。"
    words = words_of(client, typed)
    assert (words.verdict, words.text) == ("question", typed)


def test_an_explanation_is_words_of_their_own():
    assert judge_words("盖章扫描件下周一补发，谢谢") == "question"


def test_a_forgotten_attachment_is_not_a_question():
    assert judge_words("您好，推荐表请查收附件，谢谢！") == "attachment"
    assert judge_words("附件是我县推荐表，请问格式可以吗") == "question"


def test_client_signatures_and_quote_lines_are_not_words():
    plain = "好的\n\n发自我的iPhone\n\n> 荷塘区科工信局：\n> 处理结果为：需补正。"
    assert own_words(plain) == "好的"
    assert read_words("收到\n\n来自网易邮箱大师\n").verdict == "thanks"
    assert read_words("收到，谢谢\n--\n张敏\n13807310000\n").verdict == "thanks"


def test_outlook_english_header_block_and_163_mobile_quote_are_history():
    plain = ("Thanks, noted.\n\nFrom: 株洲市工信局 <zzdztxhrj@163.com>\nSent: Wednesday, July 20, 2022 10:15 AM\n"
             "To: hetang@example.cn\nSubject: 【需补正】荷塘区\n\n请问您单位……")
    assert read_words(plain).verdict == "thanks"
    assert own_words("请问什么时候截止\n\n在 2022年7月20日，10:15，株洲市工信局 写道：\n\n已受理") == "请问什么时候截止"


def test_a_one_line_question_is_not_taken_for_a_signature():
    assert own_words("报告字数？") == "报告字数？"
    assert own_words("张敏") == "张敏"   # the only line is kept: there is nothing above it


def test_html_quote_containers_and_blockquotes_are_dropped():
    html = ("<div>请问能否延期三天</div><blockquote>已受理</blockquote>"
            "<div id=\"divRplyFwdMsg\"><b>发件人:</b> x</div><div>旧邮件正文</div>")
    assert html_text(html).split() == ["请问能否延期三天"]
    assert html_text("") == "" and html_text("<<<>>>") .strip() in ("", "<<<>>>")


def test_hostile_html_is_read_in_bounded_time():
    import time
    start = time.monotonic()
    read_words("", "<blockquote>" * 50_000 + "<div id=x" * 20_000)
    assert time.monotonic() - start < 5


def test_a_promise_to_act_is_an_acknowledgement():
    assert judge_words("您好，您的邮件已收到，我们会尽快处理。") == "thanks"
    assert judge_words("收到，我们马上修改") == "thanks"


def test_a_fresh_emails_subject_counts_when_it_asks_and_a_replys_does_not():
    assert read_words("", "", "请问调研报告有字数要求吗").verdict == "question"
    assert read_words("", "", "请问调研报告有字数要求吗").text == "请问调研报告有字数要求吗"
    assert read_words("谢谢", "", "推荐表").verdict == "thanks"
    assert read_words("收到，谢谢", "", "回复：【需补正】荷塘区 是否需要盖章？").verdict == "thanks"

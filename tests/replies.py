"""A ready-made reply for tests of the outbox and its transports."""
from email.message import EmailMessage


def reply(n: int = 1) -> EmailMessage:
    """The acceptance reply number `n`: its Message-ID is <reply-n@163.com>."""
    msg = EmailMessage()
    msg["From"] = "zzdztxhrj@163.com"
    msg["To"] = "hetang@example.cn"
    msg["Subject"] = f"【已受理】荷塘区 张三{n} 信息技术能手推荐表"
    msg["Message-ID"] = f"<reply-{n}@163.com>"
    msg.set_content("荷塘区科工信局：您好！")
    return msg

"""Real-world mail nobody here wrote (../shared/corpora) goes through a poll without a crash,
and every message is recorded: processed, or skipped with a reason."""
import hashlib
import shutil
from pathlib import Path

from tests.cli import exported, intake
from tests.configs import write_config

CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"


def test_every_corpus_email_is_recorded(tmp_path):
    files = sorted(CORPORA.rglob("*.eml"))
    assert len(files) > 50, f"the shared corpora are expected at {CORPORA} (../shared beside the repo)"
    config = write_config(tmp_path)
    new = tmp_path / "inbox" / "new"
    new.mkdir(parents=True)
    for i, path in enumerate(files):
        shutil.copyfile(path, new / f"{i:04d}.corpus")
    result = intake(config, "poll", "--once")
    assert result.returncode == 0, result.stderr
    assert "0 failed" in result.stdout, result.stdout
    submissions = exported(config)["submissions"]
    # Identical bytes are one message seen twice; everything else is a submission of its own.
    distinct = {hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    assert len(submissions) == len(distinct)
    for sub in submissions:
        assert sub["status"] in ("accepted", "needs-correction", "rejected", "skipped", "withdrawn")
        if sub["status"] == "skipped":
            assert sub["reason"]
    assert not list(new.iterdir()), "every message was moved to cur/ once recorded"

"""make demo's bookkeeping: the promises its summary checks, and re-runs on the same platform home."""

from __future__ import annotations

from email.message import EmailMessage

from tooling import demo


def test_the_summary_fails_without_one_mail_per_episode_or_an_audited_retraining() -> None:
    replay = demo.Replay(episodes=["m/1998-05-27"], mails=[], retrain_ids=["drift__1998-05-27"], audited={})
    assert replay.problems() == [
        "1 drift episodes but 0 alert e-mails",
        "retraining runs without an audited promotion decision in models/<model>/decisions: ['drift__1998-05-27']",
    ]
    kept = demo.Replay(
        episodes=["m/1998-05-27"],
        mails=["[ml-platform] DRIFT m 1998-05-27: ..."],
        retrain_ids=["drift__1998-05-27"],
        audited={"drift__1998-05-27": "promoted (applied True)"},
    )
    assert kept.problems() == []


def test_a_rerun_on_the_same_home_gets_fresh_run_ids() -> None:
    taken = {"demo__1998-04-01", "demo__1998-04-01__2"}

    class Runs:
        """The one call fresh_run_id makes on Airflow's REST API."""

        def run(self, dag_id: str, run_id: str) -> dict | None:
            return {"dag_run_id": run_id} if run_id in taken else None

    assert demo.fresh_run_id(Runs(), "scoring", "demo__1998-04-29") == "demo__1998-04-29"
    assert demo.fresh_run_id(Runs(), "scoring", "demo__1998-04-01") == "demo__1998-04-01__3"


def test_only_mails_that_arrived_during_the_nights_are_counted(tmp_path) -> None:
    def keep(name: str, subject: str) -> None:
        message = EmailMessage()
        message["Subject"] = subject
        (tmp_path / name).write_bytes(bytes(message))

    keep("old.eml", "[ml-platform] DRIFT m 1998-01-01: from an earlier demo")
    seen = {p.name for p in tmp_path.glob("*.eml")}
    keep("new.eml", "[ml-platform] DRIFT m 1998-05-27: 24 of 26 features drifted")
    assert demo.new_mails(tmp_path, seen) == ["[ml-platform] DRIFT m 1998-05-27: 24 of 26 features drifted"]

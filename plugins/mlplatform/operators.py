"""Operators: the data-quality gate, a SparkSubmitOperator that tells a failed check from a failed job."""

from __future__ import annotations

import time
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowFailException

from jobs.quality import read_summary


class QualityGateOperator(SparkSubmitOperator):
    """Run ``jobs.quality`` under spark-submit; a failed critical expectation fails the task without retries.

    A crashed JVM or a lost executor is retried as usual. A gate that ran and found bad data would find it again,
    so that failure is final at once (AirflowFailException) and the notifier mails the team straight away. On
    success the task returns a small dict (report location, warnings) for XCom.
    """

    template_fields = (*SparkSubmitOperator.template_fields, "summary_path")

    def __init__(self, *, summary_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.summary_path = summary_path

    def execute(self, context: Any) -> dict[str, Any]:
        started = time.time()
        try:
            super().execute(context)
        except Exception as exc:
            summary = read_summary(self.summary_path, run_id=context["run_id"], newer_than=started)
            if summary is not None and not summary["passed"]:
                failed = ", ".join(
                    f"{f['dataset']}.{f['expectation']}({f['column']})" for f in summary["critical_failures"]
                )
                raise AirflowFailException(
                    f"data-quality gate failed: {failed}; report {summary['report']}; not retried"
                ) from exc
            raise
        summary = read_summary(self.summary_path, run_id=context["run_id"], newer_than=started)
        if summary is None:
            raise AirflowFailException(f"the gate exited 0 but wrote no summary for this run at {self.summary_path}")
        self.log.info("data-quality report: %s", summary["report"])
        return {
            "passed": summary["passed"],
            "evaluated": summary["evaluated"],
            "warnings": len(summary["warnings"]),
            "report": summary["report"],
        }

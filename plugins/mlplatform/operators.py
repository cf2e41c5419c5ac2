"""Operators: a Spark job (spark-submit, or a Spark Connect client), the data-quality gate and the promotion job
(Spark jobs that tell a final verdict from a failed job), and the two training backends (a local subprocess and a
Kubernetes GPU pod), both verified against MLflow. Each links its task instance to what it produced (see
``mlplatform.links``)."""

from __future__ import annotations

import time
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from jobs.reports import read_summary
from mlplatform import notifiers
from mlplatform.links import (
    DataQualityReportLink,
    DriftReportLink,
    EvaluationReportLink,
    MLflowRunLink,
    push,
    push_mlflow_run,
)

# What a Spark Connect client prints when its server died, restarted (a new session) or cannot be reached.
SERVER_LOST = ("INVALID_HANDLE", "SESSION_CHANGED", "StatusCode.UNAVAILABLE", "failed to connect to all addresses")


def _stream(operator: Any, argv: list[str], env: dict[str, str], watch: Any = None, cwd: Any = None) -> int:
    """Run ``argv``, log its output line by line (``watch`` sees each line too), return its exit code; the process
    is ``operator._client`` meanwhile, for ``on_kill``."""
    import subprocess

    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return _follow(operator, process, watch)


def _follow(operator: Any, process: Any, watch: Any = None) -> int:
    """Log a started process's (or warm job's) output line by line until it exits; return its exit code."""
    with process:
        operator._client = process
        for line in process.stdout:
            operator.log.info("%s", line.rstrip())
            if watch is not None:
                watch(line)
        return process.wait()


class SparkJobOperator(SparkSubmitOperator):
    """Run ``include/spark_entry.py <module> <args>`` (a jobs module's ``main``) as a Spark job.

    ``spark_mode="connect"`` (the default): a thin client process of the long-running Spark Connect server that the
    ``spark_connect`` connection ``connect_conn_id`` names (the provider's SparkConnectHook builds its ``sc://`` URL,
    which the job reads as ``MLP_SPARK_REMOTE``). ``"submit"``: a spark-submit on ``conn_id`` (a JVM per task).
    The same entry point and arguments either way. Killing the task (a timeout, a mark-failed) sends the client
    SIGTERM, and the job interrupts its own operations on the server before it exits.
    """

    def __init__(
        self, *, spark_mode: str = "connect", connect_conn_id: str = "spark_connect_default", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.spark_mode = spark_mode
        self.connect_conn_id = connect_conn_id
        self._client: Any = None

    def execute(self, context: Any) -> Any:
        if self.spark_mode != "connect":
            return super().execute(context)
        import os
        import signal

        from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook

        from jobs import launcher
        from jobs.settings import load

        url = SparkConnectHook(self.connect_conn_id).get_connection_url()
        args = [str(a) for a in self.application_args or []]
        env = {**os.environ, **(self.env_vars or {}), "MLP_SPARK_REMOTE": url}
        process = launcher.popen(str(self.application), args, env, warm=load().job_launcher == "warm")
        self.log.info(
            "Spark Connect client of %s (%s, pid %d): %s",
            url.split(";")[0],
            "a warm launcher's child" if getattr(process, "warm", False) else "a new process",
            process.pid,
            " ".join([str(self.application), *args]),
        )
        lost: list[str] = []  # the first sign that the server went away or lost this client's session

        def watch(line: str) -> None:
            if not lost and any(sign in line for sign in SERVER_LOST):
                lost.append(line.strip()[:300])

        code = _follow(self, process, watch)
        if code < 0:
            raise AirflowException(f"Spark Connect client killed by {signal.Signals(-code).name}")
        if code != 0 and lost:
            raise AirflowException(
                f"Spark Connect client exited with {code}: the server at {url.split(';')[0]} went away or restarted "
                f"during the job ({lost[0]}); a retry runs the job again from its start"
            )
        if code != 0:
            raise AirflowException(f"Spark Connect client exited with {code}; see its log above")
        return None

    def on_kill(self) -> None:
        if self.spark_mode != "connect":
            return super().on_kill()
        client = self._client
        if client is not None and client.poll() is None:
            import subprocess

            client.terminate()  # the job interrupts its server-side operations, then exits
            try:
                client.wait(timeout=30)
            except subprocess.TimeoutExpired:
                client.kill()
        return None


class QualityGateOperator(SparkJobOperator):
    """Run ``jobs.quality.gate`` as a Spark job; a failed critical expectation fails the task without retries.

    A crashed JVM or a lost executor is retried as usual. A gate that ran and found bad data would find it again,
    so that failure is final at once (AirflowFailException) and the notifier mails the team straight away. On
    success the task returns a small dict (report location, warnings) for XCom.
    """

    template_fields = (*SparkSubmitOperator.template_fields, "summary_path")
    operator_extra_links = (*SparkSubmitOperator.operator_extra_links, DataQualityReportLink())

    def __init__(self, *, model: str, summary_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.summary_path = summary_path

    def execute(self, context: Any) -> dict[str, Any]:
        started = time.time()
        try:
            super().execute(context)
        except Exception as exc:
            summary = read_summary(self.summary_path, run_id=context["run_id"], newer_than=started)
            push(context, DataQualityReportLink, (summary or {}).get("report"))
            final = summary is not None and not summary["passed"]
            if final or context["ti"].try_number > self.retries:
                _mail(self, context, notifiers.mail_gate_failure, summary)
            if final:
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
        push(context, DataQualityReportLink, summary["report"])
        # The window rides on the features Asset event, so scoring (triggered by it) knows which date is new.
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {
                "start": summary["start"],
                "end": summary["end"],
                "versions": summary.get("versions") or {},  # what training may pin: the validated gold versions
            }
        return {
            "passed": summary["passed"],
            "evaluated": summary["evaluated"],
            "warnings": len(summary["warnings"]),
            "report": summary["report"],
        }


def _verify(model: str, dag_run_id: str, log: Any) -> dict[str, Any]:
    """The check both training backends end with: MLflow must hold a finished, complete, registered run."""
    from jobs.ml.train import TrainingVerificationError, verify_training_run
    from jobs.settings import load

    try:
        result = verify_training_run(load(), model, dag_run_id)
    except TrainingVerificationError as exc:
        raise AirflowFailException(f"training did not complete: {exc}") from exc
    log.info(
        "verified MLflow run %s: %s version %s (%s), holdout %s",
        result["run_id"],
        model,
        result["version"],
        result["winner"],
        {k: v for k, v in result.items() if k.startswith("holdout_")},
    )
    return result


class LocalTrainingOperator(BaseOperator):
    """Run the training command as a local subprocess (the `local` backend), stream its log, then verify in MLflow.

    The command is the same list a Kubernetes pod would run. A non-zero exit, a kill (OOM killer, SIGKILL) or an
    exit 0 that left no complete MLflow run all fail the task.
    """

    template_fields = ("command", "model")
    operator_extra_links = (MLflowRunLink(),)

    def __init__(self, *, command: list[str], model: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.command = command
        self.model = model

    def execute(self, context: Any) -> dict[str, Any]:
        import os
        import signal
        import sys

        from jobs.settings import REPO_ROOT

        argv = [sys.executable if self.command[0] == "python" else self.command[0], *self.command[1:]]
        self.log.info("running: %s", " ".join(argv))
        code = _stream(self, argv, os.environ.copy(), cwd=REPO_ROOT)
        if code < 0:
            raise AirflowException(
                f"training process killed by {signal.Signals(-code).name} (out of memory? the OOM killer sends SIGKILL)"
            )
        if code != 0:
            raise AirflowException(f"training process exited with {code}; see its log above")
        result = _verify(self.model, context["run_id"], self.log)
        push_mlflow_run(context, result["run_id"])
        return result


def kubernetes_literal(text: str) -> str:
    """``text`` escaped so Kubernetes passes it on verbatim: the kubelet expands ``$(VAR)`` in a container's command,
    args and env values and reduces ``$$`` to ``$``, so doubling every ``$`` undoes exactly that expansion."""
    return text.replace("$", "$$")


def training_pod_operator(**kwargs: Any) -> Any:
    """A KubernetesPodOperator subclass instance that verifies the MLflow run once the pod has finished."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    class TrainingPodOperator(KubernetesPodOperator):
        """Train in a GPU pod (logs streamed, pod deleted), then verify the MLflow run like the local backend.

        The command, its arguments and the operator's env values are data, not Kubernetes expressions: a free-text
        ``--reason`` of ``$(MLFLOW_TRACKING_PASSWORD)`` (a Param, a drift alert) would otherwise make the kubelet
        substitute the secret into argv and from there into MLflow tags. They are escaped after templates render, on
        the pod request only (the operator's own fields stay as rendered, so a rebuilt request is not escaped twice).
        """

        template_fields = (*KubernetesPodOperator.template_fields, "model")
        operator_extra_links = (*KubernetesPodOperator.operator_extra_links, MLflowRunLink())

        def __init__(self, *, model: str, **kw: Any) -> None:
            super().__init__(**kw)
            self.model = model

        def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> Any:
            pod = super().build_pod_request_obj(context, dry_run=dry_run)
            own_env = {e.name for e in self.env_vars or []}
            for container in pod.spec.containers:
                if container.name != self.base_container_name:
                    continue
                container.command = [kubernetes_literal(x) for x in container.command or []] or None
                container.args = [kubernetes_literal(x) for x in container.args or []] or None
                for env in container.env or []:
                    if env.name in own_env and env.value is not None:
                        env.value = kubernetes_literal(env.value)
            return pod

        def execute(self, context: Any) -> dict[str, Any]:
            super().execute(context)
            result = _verify(self.model, context["run_id"], self.log)
            push_mlflow_run(context, result["run_id"])
            return result

    return TrainingPodOperator(**kwargs)


class PromotionOperator(SparkJobOperator):
    """Run ``jobs.ml.promotion`` (evaluate, decide, audit, move aliases) as a Spark job.

    A manual promotion that the gates refused, a request that cannot be carried out (no such version, no reason),
    or a recorded decision that could not be applied (the champion was moved outside it) is final at once: asking
    again gives the same answer. A crash is retried, and the retry carries out the decision the first try recorded
    in models/<model>/decisions (it never decides anew). Returns the decision's outline for XCom.
    """

    template_fields = (*SparkSubmitOperator.template_fields, "decision_path")
    operator_extra_links = (*SparkSubmitOperator.operator_extra_links, EvaluationReportLink(), MLflowRunLink())

    def __init__(self, *, model: str, decision_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.decision_path = decision_path

    def execute(self, context: Any) -> dict[str, Any]:
        started = time.time()
        try:
            super().execute(context)
        except Exception as exc:
            decision = read_summary(self.decision_path, dag_run_id=context["run_id"], newer_than=started)
            _link_decision(context, decision)
            final = bool(decision) and (
                decision.get("phase") == "failed"
                or bool(decision.get("error"))
                or (decision.get("kind") == "promote" and decision.get("action") == "rejected")
            )
            if final or context["ti"].try_number > self.retries:
                _mail(self, context, notifiers.mail_decision, decision, str(exc))
            if decision and decision.get("phase") == "failed":
                raise AirflowFailException(f"{decision['summary']}; audited as failed, not retried") from exc
            if decision and decision.get("error"):
                raise AirflowFailException(f"promotion refused: {decision['error']}; not retried") from exc
            if decision and decision.get("kind") == "promote" and decision.get("action") == "rejected":
                raise AirflowFailException(
                    f"{decision['summary']} Report: {decision['report']}. Force it with a reason if you must."
                ) from exc
            raise
        decision = read_summary(self.decision_path, dag_run_id=context["run_id"], newer_than=started)
        if decision is None or "action" not in decision:
            raise AirflowFailException(f"the promotion job exited 0 but wrote no decision at {self.decision_path}")
        self.log.info("%s", decision["summary"])
        _link_decision(context, decision)
        # The audited outcome, mailed once per decision; an SMTP outage fails this try (the decision is done, so
        # the retry only resumes it and delivers the pending mail).
        notifiers.mail_decision(context, self.model, decision)
        if decision.get("report"):
            self.log.info("evaluation report: %s", decision["report"])
        return {
            k: decision.get(k)
            for k in ("decision_id", "action", "champion_before", "champion_after", "report", "evaluation_run_id")
        }


def _mail(operator: Any, context: Any, mail: Any, *args: Any) -> None:
    """Queue and deliver a failure mail; if SMTP is down it stays pending (said in the log), and the task's own
    failure is what is raised."""
    try:
        mail(context, operator.model, *args)
    except Exception as exc:  # the task fails anyway; the mail waits in the outbox
        operator.log.error("the e-mail for this failure is pending in the outbox, not sent: %s", exc)


def _link_decision(context: Any, decision: dict | None) -> None:
    """Let the promotion task link its evaluation report and evaluation run (when the decision got that far)."""
    if decision:
        push(context, EvaluationReportLink, decision.get("report"))
        push_mlflow_run(context, decision.get("evaluation_run_id"))


class DriftMonitorOperator(SparkJobOperator):
    """Run ``jobs.monitoring.drift`` as a Spark job; return tonight's alert decision (small) for the alert."""

    template_fields = (*SparkSubmitOperator.template_fields, "summary_path", "as_of_date")
    operator_extra_links = (*SparkSubmitOperator.operator_extra_links, DriftReportLink())

    def __init__(self, *, summary_path: str, as_of_date: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.summary_path = summary_path
        self.as_of_date = as_of_date

    def execute(self, context: Any) -> dict[str, Any]:
        started = time.time()
        super().execute(context)
        # A retry must not pass on the previous try's summary, nor another night's.
        summary = read_summary(self.summary_path, as_of_date=self.as_of_date, newer_than=started)
        if summary is None:
            raise AirflowFailException(f"the drift job exited 0 but wrote no summary at {self.summary_path}")
        self.log.info("drift report: %s", summary["report"])
        push(context, DriftReportLink, summary["report"])
        self.log.info("alert decision: %s", summary["decision"])
        return {
            **summary["decision"],
            "as_of_date": summary["as_of_date"],
            "drifted_share": summary["drifted_share"],
            "retrain_reason": summary["retrain_reason"],
            "retrain_as_of_end": summary.get("retrain_as_of_end"),
            "report": summary["report"],
            "summary": self.summary_path,
        }

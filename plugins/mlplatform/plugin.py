"""The platform's Airflow plugin: registers the task links (MLflow run; quality, evaluation, drift reports)."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from mlplatform.links import LINKS


class MLPlatformPlugin(AirflowPlugin):
    """Lists the platform's links; the operators declare them (``operator_extra_links``), so each link keeps its
    ``operators`` empty: naming operators here would make the API server call ``get_link`` itself, outside a task,
    instead of reading the URL the worker stored in XCom."""

    name = "mlplatform"
    operator_extra_links: ClassVar[list[Any]] = [link() for link in LINKS]

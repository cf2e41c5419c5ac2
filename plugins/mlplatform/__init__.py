"""The platform's Airflow extensions (this folder is Airflow's plugins folder, so DAG files import `mlplatform.*`).

Logic lives in the `jobs` package; these modules only wire it into Airflow: `tasks` (the task factories the DAG files
use), `operators` (quality gate, promotion, drift monitor, local and Kubernetes training), `notifiers` (quality gate,
promotion and drift e-mails), `links` (task links to MLflow runs and reports) and `plugin` (registers the links).
"""

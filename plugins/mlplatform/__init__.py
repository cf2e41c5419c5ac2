"""The platform's Airflow extensions (this folder is Airflow's plugins folder, so DAG files import `mlplatform.*`).

Logic lives in the `jobs` package; these modules only wire it into Airflow: the data-quality gate operator and its
failure notifier.
"""

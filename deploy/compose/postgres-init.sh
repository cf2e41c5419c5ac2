#!/usr/bin/env bash
# First start of the compose PostgreSQL (docker-entrypoint-initdb.d): a database and a role each for Airflow and
# MLflow (plus mlflow_auth, the basic-auth app's users and permissions), with the passwords from .env. Refuses the
# change-me placeholders of .env.example.
set -euo pipefail

for name in POSTGRES_PASSWORD AIRFLOW_DB_PASSWORD MLFLOW_DB_PASSWORD; do
  case "${!name:-}" in
    "" | *change-me*) echo "$name is unset or still the change-me placeholder: set it in .env" >&2; exit 1 ;;
  esac
done

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v airflow_password="$AIRFLOW_DB_PASSWORD" -v mlflow_password="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
SQL

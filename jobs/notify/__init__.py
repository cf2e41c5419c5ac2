"""What the team reads: e-mail subjects and bodies rendered from include/email/ (sent by the Airflow notifiers)."""

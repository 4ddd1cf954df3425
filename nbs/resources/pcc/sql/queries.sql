-- The statements of batch scoring, written once in BigQuery standard SQL with @parameters.
-- DuckDB runs them transpiled by sqlglot. `{output_columns}` is filled with the output table's column list.

-- name: partition_stats
-- How many rows and distinct cases one day of input holds (duplicates are dropped and counted).
SELECT COUNT(*) AS total_rows, COUNT(DISTINCT case_id) AS distinct_cases
FROM pcc_cases
WHERE DATE(request_time) = @partition_date;

-- name: read_partition
-- One row per case (the latest request wins), in a stable order so chunks are deterministic.
SELECT case_id, text, request_time
FROM pcc_cases
WHERE DATE(request_time) = @partition_date
QUALIFY ROW_NUMBER() OVER (PARTITION BY case_id ORDER BY request_time DESC) = 1
ORDER BY case_id;

-- name: clear_staging
-- Staged rows of earlier (crashed) runs of the same day are never published: drop them first.
DELETE FROM pcc_inference_staging
WHERE partition_date = @partition_date;

-- name: publish_delete
-- Replace a day's rows of one model version: delete them ... (same transaction as publish_insert)
DELETE FROM pcc_inference_output
WHERE DATE(ingestion_time) >= DATE '1970-01-01'
  AND partition_date = @partition_date
  AND model_version = @model_version;

-- name: publish_insert
-- ... and insert the run's staged rows.
INSERT INTO pcc_inference_output ({output_columns})
SELECT {output_columns}
FROM pcc_inference_staging
WHERE run_id = @run_id;

-- name: publish_cleanup
DELETE FROM pcc_inference_staging
WHERE run_id = @run_id;

-- name: published_count
-- Verification after the write: rows and distinct cases now published for the day and model version.
SELECT COUNT(*) AS n_rows, COUNT(DISTINCT case_id) AS n_cases, COUNTIF(run_id = @run_id) AS n_run
FROM pcc_inference_output
WHERE DATE(ingestion_time) >= DATE '1970-01-01'
  AND partition_date = @partition_date
  AND model_version = @model_version;

-- name: replace_cases_delete
-- `mlp pcc seed-cases` replaces the day it seeds.
DELETE FROM pcc_cases
WHERE DATE(request_time) = @partition_date;

-- name: recent_runs
SELECT run_id, partition_date, runtime_ts, status, model_version, model_source, total_cases, passed_validation,
       dropped_cases, rows_written, psi_confidence, psi_label_mix, drift_flag, max_feature_psi, processing_duration_seconds,
       notes, error_message
FROM pcc_monitoring_logs
WHERE DATE(ingestion_time) >= @since
ORDER BY runtime_ts DESC
LIMIT @limit;

-- name: output_for_day
SELECT *
FROM pcc_inference_output
WHERE DATE(ingestion_time) >= DATE '1970-01-01'
  AND partition_date = @partition_date
ORDER BY model_version, case_id;

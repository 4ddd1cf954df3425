-- Views for Looker and the local dashboard, written once in BigQuery standard SQL.
-- Each view filters on its table's partition column itself (the tables require a partition filter);
-- older partitions expire anyway.

-- name: pcc_daily_volume
SELECT partition_date,
       model_version,
       COUNT(*) AS cases,
       ROUND(AVG(confidence), 4) AS mean_confidence,
       COUNTIF(confidence < 0.5) AS low_confidence_cases
FROM pcc_inference_output
WHERE DATE(ingestion_time) >= DATE_SUB(CURRENT_DATE(), INTERVAL 90 DAY)
GROUP BY partition_date, model_version;

-- name: pcc_label_mix_daily
SELECT partition_date,
       model_version,
       predicted_label,
       COUNT(*) AS cases,
       SAFE_DIVIDE(COUNT(*), SUM(COUNT(*)) OVER (PARTITION BY partition_date, model_version)) AS share
FROM pcc_inference_output
WHERE DATE(ingestion_time) >= DATE_SUB(CURRENT_DATE(), INTERVAL 90 DAY)
GROUP BY partition_date, model_version, predicted_label;

-- name: pcc_confidence_distribution
SELECT partition_date,
       model_version,
       LEAST(CAST(FLOOR(confidence * 10) AS INT64), 9) / 10 AS bin_start,
       COUNT(*) AS cases
FROM pcc_inference_output
WHERE DATE(ingestion_time) >= DATE_SUB(CURRENT_DATE(), INTERVAL 90 DAY)
GROUP BY partition_date, model_version, bin_start;

-- name: pcc_runs
SELECT run_id,
       partition_date,
       runtime_ts,
       status,
       model_version,
       model_source,
       embedding_model,
       total_cases,
       passed_validation,
       dropped_cases,
       rows_written,
       processing_duration_seconds,
       psi_confidence,
       psi_label_mix,
       drift_flag,
       max_feature_psi,
       feature_psi,
       drop_reasons,
       fallback_used,
       notes,
       error_message
FROM pcc_monitoring_logs
WHERE DATE(ingestion_time) >= DATE_SUB(CURRENT_DATE(), INTERVAL 90 DAY);

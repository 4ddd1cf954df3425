- dashboard: pcc_overview
  title: "PCC: privacy-intent batch scoring"
  layout: newspaper
  preferred_viewer: dashboards-next
  filters:
  - name: partition_date
    title: "Scored day"
    type: date_filter
    default_value: "30 days"
  elements:
  - name: daily_volume
    title: "Cases scored per day"
    model: pcc
    explore: pcc_daily_volume
    type: looker_column
    fields: [pcc_daily_volume.partition_date, pcc_daily_volume.cases, pcc_daily_volume.low_confidence_cases]
    sorts: [pcc_daily_volume.partition_date]
    listen:
      partition_date: pcc_daily_volume.partition_date
    row: 0
    col: 0
    width: 12
    height: 6
  - name: label_mix
    title: "Label mix per day"
    model: pcc
    explore: pcc_label_mix_daily
    type: looker_column
    stacking: percent
    fields: [pcc_label_mix_daily.partition_date, pcc_label_mix_daily.predicted_label, pcc_label_mix_daily.cases]
    pivots: [pcc_label_mix_daily.predicted_label]
    sorts: [pcc_label_mix_daily.partition_date]
    listen:
      partition_date: pcc_label_mix_daily.partition_date
    row: 0
    col: 12
    width: 12
    height: 6
  - name: confidence
    title: "Confidence distribution"
    model: pcc
    explore: pcc_confidence_distribution
    type: looker_column
    fields: [pcc_confidence_distribution.bin_start, pcc_confidence_distribution.cases]
    sorts: [pcc_confidence_distribution.bin_start]
    listen:
      partition_date: pcc_confidence_distribution.partition_date
    row: 6
    col: 0
    width: 12
    height: 6
  - name: runs
    title: "Runs: status and drift"
    model: pcc
    explore: pcc_runs
    type: looker_grid
    fields: [pcc_runs.runtime_time, pcc_runs.partition_date, pcc_runs.status, pcc_runs.model_version, pcc_runs.model_source,
             pcc_runs.total_cases, pcc_runs.dropped_cases, pcc_runs.psi_confidence, pcc_runs.psi_label_mix, pcc_runs.max_feature_psi,
             pcc_runs.drift_flag, pcc_runs.error_message]
    sorts: [pcc_runs.runtime_time desc]
    listen:
      partition_date: pcc_runs.partition_date
    row: 6
    col: 12
    width: 12
    height: 6
  - name: psi_over_time
    title: "PSI over time (drift above 0.2)"
    model: pcc
    explore: pcc_runs
    type: looker_line
    fields: [pcc_runs.partition_date, pcc_runs.max_psi_confidence, pcc_runs.max_psi_input_features]
    sorts: [pcc_runs.partition_date]
    listen:
      partition_date: pcc_runs.partition_date
    row: 12
    col: 0
    width: 24
    height: 6

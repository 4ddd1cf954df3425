view: pcc_runs {
  sql_table_name: `@{PCC_PROJECT}.@{PCC_DATASET}.pcc_runs` ;;

  dimension: run_id {
    primary_key: yes
    type: string
    sql: ${TABLE}.run_id ;;
  }
  dimension_group: partition {
    type: time
    timeframes: [date, week]
    datatype: date
    sql: ${TABLE}.partition_date ;;
  }
  dimension_group: runtime {
    type: time
    timeframes: [time, date]
    sql: ${TABLE}.runtime_ts ;;
  }
  dimension: status {
    type: string
    sql: ${TABLE}.status ;;
    html: {% if value == 'failed' %}<span style="color:#c0392b">{{ value }}</span>{% elsif value == 'drifted' %}<span style="color:#ca6f1e">{{ value }}</span>{% elsif value == 'partial' %}<span style="color:#d68910">{{ value }}</span>{% else %}{{ value }}{% endif %} ;;
  }
  dimension: model_version {
    type: string
    sql: ${TABLE}.model_version ;;
  }
  dimension: model_source {
    type: string
    sql: ${TABLE}.model_source ;;
  }
  dimension: fallback_used {
    type: yesno
    sql: ${TABLE}.fallback_used ;;
  }
  dimension: drift_flag {
    type: yesno
    sql: ${TABLE}.drift_flag ;;
  }
  dimension: psi_confidence {
    type: number
    value_format_name: decimal_3
    sql: ${TABLE}.psi_confidence ;;
  }
  dimension: psi_label_mix {
    type: number
    value_format_name: decimal_3
    sql: ${TABLE}.psi_label_mix ;;
  }
  dimension: max_feature_psi {
    description: "The largest PSI of the input features (length, PII, sentiment, privacy keywords) against the training texts"
    type: number
    value_format_name: decimal_3
    sql: ${TABLE}.max_feature_psi ;;
  }
  dimension: feature_psi {
    description: "JSON: input feature -> PSI"
    type: string
    sql: ${TABLE}.feature_psi ;;
  }
  dimension: drop_reasons {
    description: "JSON: reason -> dropped cases"
    type: string
    sql: ${TABLE}.drop_reasons ;;
  }
  dimension: error_message {
    type: string
    sql: ${TABLE}.error_message ;;
  }
  dimension: notes {
    type: string
    sql: ${TABLE}.notes ;;
  }
  measure: runs {
    type: count
  }
  measure: failed_runs {
    type: count
    filters: [status: "failed"]
  }
  measure: drifted_runs {
    type: count
    filters: [drift_flag: "yes"]
  }
  measure: total_cases {
    type: sum
    sql: ${TABLE}.total_cases ;;
  }
  measure: dropped_cases {
    type: sum
    sql: ${TABLE}.dropped_cases ;;
  }
  measure: rows_written {
    type: sum
    sql: ${TABLE}.rows_written ;;
  }
  measure: mean_duration_seconds {
    type: average
    value_format_name: decimal_1
    sql: ${TABLE}.processing_duration_seconds ;;
  }
  measure: max_psi_confidence {
    type: max
    value_format_name: decimal_3
    sql: ${TABLE}.psi_confidence ;;
  }
  measure: max_psi_input_features {
    type: max
    value_format_name: decimal_3
    sql: ${TABLE}.max_feature_psi ;;
  }
}

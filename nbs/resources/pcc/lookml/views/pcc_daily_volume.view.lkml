view: pcc_daily_volume {
  sql_table_name: `@{PCC_PROJECT}.@{PCC_DATASET}.pcc_daily_volume` ;;

  dimension_group: partition {
    type: time
    timeframes: [date, week, month]
    datatype: date
    sql: ${TABLE}.partition_date ;;
  }
  dimension: model_version {
    type: string
    sql: ${TABLE}.model_version ;;
  }
  measure: cases {
    type: sum
    sql: ${TABLE}.cases ;;
  }
  measure: low_confidence_cases {
    type: sum
    sql: ${TABLE}.low_confidence_cases ;;
  }
  measure: mean_confidence {
    type: average
    value_format_name: decimal_3
    sql: ${TABLE}.mean_confidence ;;
  }
}

view: pcc_label_mix_daily {
  sql_table_name: `@{PCC_PROJECT}.@{PCC_DATASET}.pcc_label_mix_daily` ;;

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
  dimension: predicted_label {
    type: string
    sql: ${TABLE}.predicted_label ;;
  }
  measure: cases {
    type: sum
    sql: ${TABLE}.cases ;;
  }
  measure: share {
    type: average
    value_format_name: percent_1
    sql: ${TABLE}.share ;;
  }
}

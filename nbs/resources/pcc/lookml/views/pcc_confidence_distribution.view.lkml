view: pcc_confidence_distribution {
  sql_table_name: `@{PCC_PROJECT}.@{PCC_DATASET}.pcc_confidence_distribution` ;;

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
  dimension: bin_start {
    label: "Confidence bin (from)"
    type: number
    value_format_name: decimal_1
    sql: ${TABLE}.bin_start ;;
  }
  measure: cases {
    type: sum
    sql: ${TABLE}.cases ;;
  }
}

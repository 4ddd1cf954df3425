# Privacy case classification (PCC): batch privacy-intent predictions and their monitoring.
connection: "pcc_bigquery"

include: "/views/*.view.lkml"
include: "/dashboards/*.dashboard.lookml"

datagroup: pcc_daily {
  sql_trigger: SELECT MAX(runtime_ts) FROM `@{PCC_PROJECT}.@{PCC_DATASET}.pcc_runs` ;;
  max_cache_age: "24 hours"
}
persist_with: pcc_daily

explore: pcc_daily_volume {
  label: "PCC daily volume"
}
explore: pcc_label_mix_daily {
  label: "PCC label mix"
}
explore: pcc_confidence_distribution {
  label: "PCC confidence distribution"
}
explore: pcc_runs {
  label: "PCC runs and drift"
}

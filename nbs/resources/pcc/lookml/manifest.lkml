# Where the PCC tables live in BigQuery: `mlp pcc lookml --out DIR --project P --dataset D` fills these in.
constant: PCC_PROJECT {
  value: "my-gcp-project"
  export: override_optional
}
constant: PCC_DATASET {
  value: "pcc"
  export: override_optional
}

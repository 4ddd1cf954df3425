"""Eight ML-engineering systems on one shared platform: data, training, batch and online inference, LLM review, embedding maps, note capture and visual-symbolic perception.

Modules:

- `mlportfolio.review.agents`: Three agents on `mlportfolio.core.llm` with structured output whose enums come from the taxonomy: the evaluator (`Correct | Incorrect | Uncertain`), the proposer (a taxonomy label, or none) and the reasoner (a short explanation citing retrieved ids); prompts that keep the audited text delimited as data; and the documented rule that combines the LLM with the model-free signal.
- `mlportfolio.review.api`: A FastAPI app over one `Reviewer` and the audit log: `POST /review`, `GET /reviews`, `GET /reviews/{id}`, `GET /stats`, `GET /health` and Prometheus `/metrics`; typed pydantic requests and responses, one JSON error shape, an optional API key for writes.
- `mlportfolio.review.cli`: `mlp review run | show | stats | serve | evaluate`: audit predictions from a file or a day of PCC output, look at one review, summarise the audit log, serve the HTTP API, and measure the reviewer on injected noise.
- `mlportfolio.review.evaluate`: Take a clean labelled set, corrupt a known fraction of its labels (uniformly, or along realistic confusions), audit the noisy labels as if they were predictions, and measure how well each signal finds the corrupted ones: model-free only, LLM only, and the combination.
- `mlportfolio.review.report`: One self-contained HTML file per run: the flagged items ranked by suspicion, each with its text, predicted and proposed label, both signals, the explanation and its cited neighbours; and a confusion view of the proposed corrections.
- `mlportfolio.review.retrieval`: FAISS over the reference set and the taxonomy's definitions: for each audited text, the nearest examples of *every* label (label-balanced), in a shuffled order, each with its id, plus the definitions ranked by similarity.
- `mlportfolio.review.run`: Read predictions (a CSV/Parquet file, or a day of PCC output from the warehouse), compute the model-free signal, retrieve evidence, call the agents where the model-free signal is not confident, combine, and store every review; resumable by run id.
- `mlportfolio.review.signals`: The reviewer's independent signal: out-of-sample class probabilities from the nearest labelled neighbours of each audited text (MiniLM embeddings, FAISS) and from logistic regressions fitted on the labelled reference set only, turned into label-issue flags and label-quality scores by cleanlab; and a heuristic that flags audited texts that try to instruct the reviewer.
- `mlportfolio.review.store`: Every review, with both signals, the verdict and the LLM call's provenance (prompt hash and version, model, backend, tokens, latency, retrieved and cited ids), in a SQLite audit log under `MLP_HOME`; one run record per review run; reviews of PCC output also go to the warehouse table `pcc_reviews`."""

__version__ = "0.1.0"

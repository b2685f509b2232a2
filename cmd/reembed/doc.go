// Command reembed prices, times and runs the rebuild of lost embeddings.
//
// Usage:
//
//	reembed <command> [flags] [PATH...]
//
// Commands:
//
//	estimate   price and time a rebuild of a corpus (default: the bundled sample), or a what-if
//	           (--documents N --tokens-per-document T); --model all compares every model;
//	           --shards N gives per-shard figures, --shard i/N one shard
//	models     list the pricing catalog: prices, limits, tokenizer, source and date
//	rebuild    embed a corpus into resumable Parquet checkpoints under --out (a directory or
//	           s3://, gs://, azblob:// URL); running it again resumes
//	verify     report how completely a checkpoint covers a corpus: present, missing, stale, extra
//	           (all shards as one, or --shard i/N)
//	drill      estimate, rebuild in a child process, SIGKILL it, resume, verify, and compare
//	           predicted with actual tokens, requests, cost and duration
//	simulate   serve a simulated OpenAI-compatible POST /v1/embeddings with limits, faults and a ledger
//	serve      serve the REST API that runbooks call (openapi.yaml)
//
// Every command prints its flags with -h. Exit codes: 0 success, 1 error, 2 bad
// usage or input, 3 rebuild stopped at its budget (resumable), 4 verify found
// coverage incomplete, 5 drill failed, 130 interrupted (resumable).
//
// The README is the full manual.
package main

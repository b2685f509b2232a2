// Package checkpoint stores the output of a rebuild as crash-safe Parquet parts
// and answers, on resume and in verify, which chunks are already embedded.
//
// It imports nothing of ours (DESIGN §1 allows corpus types; it does not need them).
//
// # Layout
//
// An output root holds one manifest and a numbered series of parts per shard:
//
//	manifest.json                          unsharded run (--shard absent, Shard.Count 0)
//	part-000001.parquet
//	part-000002.parquet
//	shard-0002-of-0004/manifest.json       shard 2 of 4 (indexes are 0-based: 0..3)
//	shard-0002-of-0004/part-000001.parquet
//
// Each shard writes only below its own directory ([ShardDir]), so shards on
// different machines never race on a name, and `read_parquet('root/**/*.parquet')`
// in DuckDB reads every shard as one table. Temporary files (`.reembed-tmp-*`, [TempPrefix]) and parts
// moved aside (`*.parquet.corrupt`) never match `*.parquet`.
//
// # Commit protocol
//
// A part is written to `.reembed-tmp-part-NNNNNN.parquet-*` in its final directory; the
// Parquet writer is closed (footer), the file is fsynced and closed, renamed to
// `part-NNNNNN.parquet`, and the directory is fsynced ([Dir.Commit]). A part is
// committed if and only if its final name exists. A committed part is never
// rewritten: the next number is the highest number ever used in the shard
// directory (committed, temporary or moved aside) plus one.
//
// # Resume
//
// [Open] removes the shard's temporary files, checks every manifest of the root
// against the job (refusing with [ErrManifestMismatch] unless forced), reads only
// the key columns (doc_id, chunk_index, chunk_sha256, embedded_at) of every part
// of every shard, and moves the shard's unreadable parts aside so that their
// chunks are embedded again. [Scan] does the same reading without changing
// anything, for verify and estimate.
//
// # Superseded rows
//
// When a chunk's text changes, the rebuild writes a new row for the same key
// (doc_id, chunk_index) in a later part; the old row stays in its part, which is
// never rewritten. For each key exactly one row wins:
//
//  1. within one directory (one shard, or the unsharded root), the row in the
//     highest-numbered part wins (within a part, the last row), whatever the
//     embedded_at: part numbers are the commit order, clocks may step back;
//  2. between directories (only possible when the shard count changed between
//     runs), the winners of rule 1 are compared: the later embedded_at wins,
//     and on an equal embedded_at the row from the directory whose name sorts
//     last ("" for the root sorts first, then shard-0000-of-…, shard-0001-of-…).
//
// The same rule in DuckDB (rule 2 for every row; rule 1 only differs when a
// clock stepped back between two parts of one shard):
//
//	SELECT * FROM read_parquet('root/**/*.parquet', filename = true)
//	QUALIFY row_number() OVER (PARTITION BY doc_id, chunk_index
//	                           ORDER BY embedded_at DESC, filename DESC) = 1
//
// The other rows are reported by [Index.Superseded] (older row, other sha256)
// and [Index.Duplicates] (older row, same sha256: written twice).
package checkpoint

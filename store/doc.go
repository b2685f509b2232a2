// Package store restores a checkpoint into a live vector store (DESIGN §9).
//
// A store is reached through a [Sink]: check or create the target, load one
// part and record it as loaded (atomically, so a crash loses at most the part
// in flight and a resume loads every row exactly once), build the index after
// the load, and publish (swap the loaded table in). [Restore] drives any Sink
// over a checkpoint, one part at a time, in memory bounded by the largest part.
// [Verify] compares a live store with its checkpoint through a [Reader].
//
// Only winning rows are loaded: a row superseded by a later row of the same
// key (see the checkpoint package) is skipped, so the store holds exactly one
// row per key, the one [checkpoint.Index.Lookup] returns.
//
// Implementations: store/pgvector (PostgreSQL + pgvector, binary COPY through
// pgx) and store/pinecone (a file export in Pinecone's Parquet import layout).
package store

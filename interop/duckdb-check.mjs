// duckdb-check.mjs: read reembed checkpoint parts with DuckDB, a reader no one
// on this project wrote, and print what it sees as one JSON object on stdout:
//
//   node interop/duckdb-check.mjs CHECKPOINT_DIR [--latest]
//
//   {"columns":[{"name":"doc_id","type":"VARCHAR"},...],
//    "rows": 1234, "distinct_keys": 1234,
//    "row": {...first row by doc_id, chunk_index...,
//            "embedded_at_epoch_ms": "1795..."}}
//
// With --latest it adds "latest": the winning row of every key, by the rule
// the checkpoint package documents (the later embedded_at, then the file name
// sorting last), as [{doc_id, chunk_index, chunk_sha256, filename}] sorted by key.
//
// It reads every shard: read_parquet('DIR/**/*.parquet') (temporary files
// ".reembed-tmp-*" and parts moved aside "*.parquet.corrupt" do not match).
// Exit status: 0 when the parts read, 1 on any error (message on stderr).
import { DuckDBInstance } from '@duckdb/node-api';

async function main() {
  const dir = process.argv[2];
  const latest = process.argv.includes('--latest');
  if (!dir || dir.startsWith('--')) {
    throw new Error('usage: node duckdb-check.mjs CHECKPOINT_DIR [--latest]');
  }
  const glob = dir.replace(/\/+$/, '') + '/**/*.parquet';
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    const src = `read_parquet($glob)`;
    const described = await conn.runAndReadAll(`DESCRIBE SELECT * FROM ${src}`, { glob });
    const columns = described.getRowObjectsJson().map((r) => ({ name: r.column_name, type: r.column_type }));
    const counts = await conn.runAndReadAll(
      `SELECT count(*)::INTEGER AS n, count(DISTINCT (doc_id, chunk_index))::INTEGER AS k FROM ${src}`, { glob });
    const [{ n, k }] = counts.getRowObjectsJson();
    const first = await conn.runAndReadAll(
      `SELECT *, epoch_ms(embedded_at)::VARCHAR AS embedded_at_epoch_ms FROM ${src} ORDER BY doc_id, chunk_index LIMIT 1`,
      { glob });
    const [row] = first.getRowObjectsJson();
    const out = { columns, rows: n, distinct_keys: k, row: row ?? null };
    if (latest) {
      const winners = await conn.runAndReadAll(
        `SELECT doc_id, chunk_index, chunk_sha256, filename FROM read_parquet($glob, filename = true)
         QUALIFY row_number() OVER (PARTITION BY doc_id, chunk_index ORDER BY embedded_at DESC, filename DESC) = 1
         ORDER BY doc_id, chunk_index`, { glob });
      out.latest = winners.getRowObjectsJson();
    }
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

main().catch((err) => {
  process.stderr.write(`duckdb-check: ${err.message}\n`);
  process.exit(1);
});

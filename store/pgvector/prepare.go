package pgvector

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/reembed/reembed/field"
	"github.com/reembed/reembed/store"
)

var _ store.Sink = (*Sink)(nil)

// ErrTableMismatch is returned (wrapped) when an existing table does not have
// the documented schema for the checkpoint's vectors.
var ErrTableMismatch = fmt.Errorf("existing table does not match the restore schema")

// ErrTableExists is returned (wrapped) in [ModeAuto] when the target table
// exists and was not restored from this checkpoint.
var ErrTableExists = fmt.Errorf("table exists")

// Prepare creates the extension, the ledger and the table rows go into, or
// checks an existing one, and returns the parts already loaded into it.
func (s *Sink) Prepare(ctx context.Context, t store.Target) (map[string]bool, error) {
	loaded, err := s.prepare(ctx, t)
	return loaded, s.scrub(err)
}

func (s *Sink) prepare(ctx context.Context, t store.Target) (map[string]bool, error) {
	if t.Dimensions <= 0 || t.Dimensions > MaxHalfvecDims {
		return nil, fmt.Errorf("%d dimensions: pgvector indexes at most %d (halfvec)", t.Dimensions, MaxHalfvecDims)
	}
	s.dims, s.half, s.metric = t.Dimensions, t.Dimensions > MaxVectorDims, t.Metric
	if _, err := opclass(s.vectorType(), s.metric); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	if _, err := s.conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
		return nil, fmt.Errorf("creating the pgvector extension (install postgresql-NN-pgvector on the server): %w", err)
	}
	if _, err := s.conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.ident(LedgerTable)+
		" (target text NOT NULL, part text NOT NULL, rows integer NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (target, part))"); err != nil {
		return nil, fmt.Errorf("creating the ledger table: %w", err)
	}
	tableExists, err := s.exists(ctx, s.table)
	if err != nil {
		return nil, err
	}
	loadName := s.table + "_reembed_load"
	loadExists, err := s.exists(ctx, loadName)
	if err != nil {
		return nil, err
	}
	mode := s.cfg.Mode
	if mode == ModeAuto {
		if mode, err = s.autoMode(ctx, t, tableExists, loadExists); err != nil {
			return nil, err
		}
	}
	if tableExists {
		if err := s.checkColumns(ctx, s.table); err != nil {
			return nil, err
		}
	}
	s.load, s.swap, s.replace = s.table, false, false
	if mode == ModeSwap {
		s.load, s.swap, s.replace = loadName, true, tableExists
	}
	if err := s.createOrCheck(ctx, s.load, s.load == loadName && loadExists || s.load == s.table && tableExists); err != nil {
		return nil, err
	}
	return s.ledger(ctx, s.load)
}

// lock makes this session the only restore of the table. A killed restore's
// server session may still be running a statement (a CREATE INDEX commits on
// its own): the lock waits for it to end. client_connection_check_interval
// makes the server notice a dead client within a second, so a killed
// restore's index build stops instead of running on for hours (PostgreSQL
// 14+; older servers ignore it).
func (s *Sink) lock(ctx context.Context) error {
	_, _ = s.conn.Exec(ctx, "SET client_connection_check_interval = 1000")
	var ok bool
	key := "reembed restore " + s.qualified(s.table)
	if err := s.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key).Scan(&ok); err != nil {
		return fmt.Errorf("locking the table for the restore: %w", err)
	}
	if ok {
		return nil
	}
	if s.cfg.Notice != nil {
		s.cfg.Notice("another restore of " + s.ident(s.table) + " (or a killed one's server session) is running: waiting for it to end")
	}
	if _, err := s.conn.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended($1, 0))", key); err != nil {
		return fmt.Errorf("waiting for the other restore of the table: %w", err)
	}
	return nil
}

// autoMode picks the mode of [ModeAuto].
func (s *Sink) autoMode(ctx context.Context, t store.Target, tableExists, loadExists bool) (Mode, error) {
	if loadExists || !tableExists {
		return ModeSwap, nil
	}
	done, err := s.ledger(ctx, s.table)
	if err != nil {
		return 0, err
	}
	for id := range done {
		if strings.HasPrefix(id, t.CheckpointID+"/") {
			return ModeAppend, nil
		}
	}
	return 0, field.Errorf("%w: %s was not restored from this checkpoint: pass {swap} to replace it atomically or {append} to add and update rows in it", ErrTableExists, s.ident(s.table))
}

// exists reports whether a table of that name exists in the sink's schema.
func (s *Sink) exists(ctx context.Context, name string) (bool, error) {
	var ok bool
	if err := s.conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.qualified(name)).Scan(&ok); err != nil {
		return false, fmt.Errorf("looking up table %s: %w", s.ident(name), err)
	}
	return ok, nil
}

// createOrCheck creates the table, or checks it when it exists. A new table
// stores the embedding EXTERNAL (uncompressed TOAST): float vectors do not
// compress, and trying costs the load a third of its time.
func (s *Sink) createOrCheck(ctx context.Context, name string, exists bool) error {
	if exists {
		return s.checkColumns(ctx, name)
	}
	if _, err := s.conn.Exec(ctx, "DELETE FROM "+s.ident(LedgerTable)+" WHERE target = $1", s.qualified(name)); err != nil {
		return fmt.Errorf("clearing the ledger of %s: %w", s.ident(name), err)
	}
	sql := fmt.Sprintf(`CREATE TABLE %s (
	doc_id text NOT NULL, chunk_index integer NOT NULL, chunk_sha256 text NOT NULL, text text NOT NULL,
	model text NOT NULL, embedded_at timestamptz NOT NULL, embedding %s(%d) NOT NULL,
	PRIMARY KEY (doc_id, chunk_index));
ALTER TABLE %[1]s ALTER COLUMN embedding SET STORAGE EXTERNAL`, s.ident(name), s.vectorType(), s.dims)
	if _, err := s.conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("creating table %s: %w", s.ident(name), err)
	}
	return nil
}

// checkColumns refuses a table whose columns or key differ from the schema.
func (s *Sink) checkColumns(ctx context.Context, name string) error {
	want := map[string]string{"doc_id": "text", "chunk_index": "integer", "chunk_sha256": "text", "text": "text",
		"model": "text", "embedded_at": "timestamp with time zone", "embedding": fmt.Sprintf("%s(%d)", s.vectorType(), s.dims)}
	rows, err := s.conn.Query(ctx, `SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, s.qualified(name))
	if err != nil {
		return fmt.Errorf("reading the columns of %s: %w", s.ident(name), err)
	}
	have := map[string]string{}
	for rows.Next() {
		var col, typ string
		if err := rows.Scan(&col, &typ); err != nil {
			return fmt.Errorf("reading the columns of %s: %w", s.ident(name), err)
		}
		have[col] = typ
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the columns of %s: %w", s.ident(name), err)
	}
	var diffs []string
	for _, col := range []string{"doc_id", "chunk_index", "chunk_sha256", "text", "model", "embedded_at", "embedding"} {
		switch got, ok := have[col]; {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("column %s is missing (want %s)", col, want[col]))
		case got != want[col]:
			diffs = append(diffs, fmt.Sprintf("column %s is %s, want %s", col, got, want[col]))
		}
	}
	if len(diffs) == 0 {
		var keyed bool
		err := s.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $1::regclass AND i.indisunique
			AND (SELECT array_agg(attname::text ORDER BY attname) FROM pg_attribute WHERE attrelid = i.indrelid AND attnum = ANY(i.indkey))
			    = ARRAY['chunk_index', 'doc_id'])`, s.qualified(name)).Scan(&keyed)
		if err != nil {
			return fmt.Errorf("reading the indexes of %s: %w", s.ident(name), err)
		}
		if !keyed {
			diffs = append(diffs, "no primary key or unique index on (doc_id, chunk_index)")
		}
	}
	if len(diffs) > 0 {
		return field.Errorf("%w: %s: %s (drop it, or pass another {table})", ErrTableMismatch, s.ident(name), strings.Join(diffs, "; "))
	}
	return nil
}

// ledger returns the parts recorded as loaded into a table.
func (s *Sink) ledger(ctx context.Context, name string) (map[string]bool, error) {
	rows, err := s.conn.Query(ctx, "SELECT part FROM "+s.ident(LedgerTable)+" WHERE target = $1", s.qualified(name))
	if err != nil {
		return nil, fmt.Errorf("reading the ledger: %w", err)
	}
	parts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading the ledger: %w", err)
	}
	out := make(map[string]bool, len(parts))
	for _, p := range parts {
		out[p] = true
	}
	return out, nil
}

// LoadPart copies the part's rows into the table and records the part in
// the ledger, in one transaction. A key already present (a delta, or a row
// superseded by a later part) makes it fall back to a staging table and an
// upsert, in a new transaction.
func (s *Sink) LoadPart(ctx context.Context, p store.Part) error {
	var buf bytes.Buffer
	encodeCopy(&buf, p.Rows, s.half)
	err := s.loadTx(ctx, p, buf.Bytes(), false)
	if isUniqueViolation(err) {
		err = s.loadTx(ctx, p, buf.Bytes(), true)
	}
	if err == nil {
		s.rows += int64(len(p.Rows))
	}
	return s.scrub(err)
}

func (s *Sink) loadTx(ctx context.Context, p store.Part, data []byte, upsert bool) error {
	return pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		if len(p.Rows) > 0 {
			into := s.ident(s.load)
			if upsert {
				into = "reembed_stage"
				_, err := tx.Exec(ctx, fmt.Sprintf("CREATE TEMP TABLE reembed_stage (LIKE %s) ON COMMIT DROP", s.ident(s.load)))
				if err != nil {
					return fmt.Errorf("creating the staging table: %w", err)
				}
			}
			if _, err := s.conn.PgConn().CopyFrom(ctx, bytes.NewReader(data), "COPY "+into+" ("+copyColumns+") FROM STDIN (FORMAT binary)"); err != nil {
				return fmt.Errorf("copying %d rows: %w", len(p.Rows), err)
			}
			if upsert {
				_, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (%s) SELECT %[2]s FROM reembed_stage
					ON CONFLICT (doc_id, chunk_index) DO UPDATE SET chunk_sha256 = excluded.chunk_sha256, text = excluded.text,
					model = excluded.model, embedded_at = excluded.embedded_at, embedding = excluded.embedding`, s.ident(s.load), copyColumns))
				if err != nil {
					return fmt.Errorf("upserting %d rows: %w", len(p.Rows), err)
				}
			}
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+s.ident(LedgerTable)+" (target, part, rows) VALUES ($1, $2, $3)",
			s.qualified(s.load), p.ID, len(p.Rows)); err != nil {
			return fmt.Errorf("recording the part in the ledger: %w", err)
		}
		return nil
	})
}

// Publish swaps a freshly loaded table in, in one transaction: the old table
// (if any) is dropped, the loaded one renamed with its index and key, and its
// ledger entries moved to the table's name. Queries see the old table or the
// new one, never a half-loaded one. It does nothing when rows went straight
// into the table (append).
func (s *Sink) Publish(ctx context.Context) error {
	if !s.swap {
		return nil
	}
	return s.scrub(pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		stmts := []string{}
		if s.replace {
			stmts = append(stmts, "DROP TABLE "+s.ident(s.table))
		}
		stmts = append(stmts,
			fmt.Sprintf("ALTER TABLE %s RENAME TO %s", s.ident(s.load), pgx.Identifier{s.table}.Sanitize()),
			fmt.Sprintf("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", s.ident(s.table), pgx.Identifier{s.load + "_pkey"}.Sanitize(), pgx.Identifier{s.table + "_pkey"}.Sanitize()),
			fmt.Sprintf("ALTER INDEX IF EXISTS %s RENAME TO %s", s.ident(s.indexName()), pgx.Identifier{s.table + "_embedding_idx"}.Sanitize()),
		)
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("swapping the table in (%s): %w", strings.Fields(q)[0], err)
			}
		}
		led := s.ident(LedgerTable)
		if _, err := tx.Exec(ctx, "DELETE FROM "+led+" WHERE target = $1", s.qualified(s.table)); err != nil {
			return fmt.Errorf("swapping the ledger: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE "+led+" SET target = $1 WHERE target = $2", s.qualified(s.table), s.qualified(s.load)); err != nil {
			return fmt.Errorf("swapping the ledger: %w", err)
		}
		return nil
	}))
}

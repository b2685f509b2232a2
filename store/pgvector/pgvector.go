// Package pgvector restores checkpoints into PostgreSQL with the pgvector
// extension: binary COPY through pgx, a ledger table that records each part in
// the transaction that loads it, a fresh table swapped in atomically after the
// index is built, and the reads verify needs.
//
// # Schema
//
//	CREATE TABLE reembed_chunks (
//	    doc_id       text        NOT NULL,
//	    chunk_index  integer     NOT NULL,
//	    chunk_sha256 text        NOT NULL,
//	    text         text        NOT NULL,
//	    model        text        NOT NULL,
//	    embedded_at  timestamptz NOT NULL,
//	    embedding    vector(N)   NOT NULL,   -- halfvec(N) when N > 2000
//	    PRIMARY KEY (doc_id, chunk_index)
//	);
//	CREATE TABLE reembed_restore_ledger (
//	    target text, part text, rows integer, loaded_at timestamptz,
//	    PRIMARY KEY (target, part)
//	);
//
// pgvector indexes vector columns of at most 2,000 dimensions and halfvec
// columns of at most 4,000, so wider models (text-embedding-3-large, 3,072)
// are stored as halfvec: their elements are rounded to binary16.
package pgvector

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// MaxVectorDims is pgvector's limit on indexed vector columns; wider
// embeddings are stored as halfvec.
const MaxVectorDims = 2000

// MaxHalfvecDims is pgvector's limit on indexed halfvec columns.
const MaxHalfvecDims = 4000

// LedgerTable is the name of the table that records loaded parts, in the target's schema.
const LedgerTable = "reembed_restore_ledger"

// Mode is how a restore writes into the target table.
type Mode int

const (
	// ModeAuto swaps when the table is absent (or a swap load is unfinished),
	// resumes or tops up a table that this checkpoint was restored into, and
	// refuses any other existing table.
	ModeAuto Mode = iota
	// ModeSwap loads into a new table and swaps it in when the index is built.
	ModeSwap
	// ModeAppend loads into the existing table (creating it if absent), new
	// keys inserted and existing keys updated.
	ModeAppend
)

// Config says where to restore.
type Config struct {
	// DSN is the PostgreSQL connection string (URL or key=value).
	DSN string
	// Table is the target table, optionally schema-qualified ("schema.table").
	Table string
	// Mode is how to write into it.
	Mode Mode
	// Password, when set, is the password to connect with, in place of one
	// in the DSN, PGPASSWORD or ~/.pgpass (which pgx reads otherwise). It is
	// scrubbed from every error, as a password read from those is.
	Password string
	// Notice receives the server's notices (e.g. pgvector's "hnsw graph no
	// longer fits into maintenance_work_mem"); nil discards them.
	Notice func(msg string)
	// FieldName names settings in the notices and hints of this package
	// (package field): the CLI passes its flag names; nil names them in
	// snake_case.
	FieldName func(field string) string
}

// Sink is a pgvector table to restore into. It implements store.Sink and store.Reader.
type Sink struct {
	cfg      Config
	secret   string // the DSN's password, scrubbed from every error
	conn     *pgx.Conn
	schema   string // "" means the search path's first schema
	table    string
	load     string // the table rows go into: table itself, or the swap table
	swap     bool   // load != table
	replace  bool   // the swap replaces an existing table
	dims     int
	half     bool
	metric   string
	rows     int64
	hasIndex bool

	// LastPlan is the memory plan of the last index build.
	LastPlan IndexPlan
}

// Open connects to the server. Errors never hold the DSN's password.
func Open(ctx context.Context, cfg Config) (*Sink, error) {
	s := &Sink{cfg: cfg, secret: Password(cfg.DSN)}
	if cfg.Table == "" {
		s.cfg.Table = "reembed_chunks"
	}
	parts := strings.Split(s.cfg.Table, ".")
	switch len(parts) {
	case 1:
		s.table = parts[0]
	case 2:
		s.schema, s.table = parts[0], parts[1]
	default:
		return nil, fmt.Errorf("table %q: want TABLE or SCHEMA.TABLE", s.cfg.Table)
	}
	if s.table == "" || len(s.table) > 45 {
		// The swap table's key is TABLE_reembed_load_pkey: at most 63 bytes.
		return nil, fmt.Errorf("table %q: empty or longer than 45 bytes", s.cfg.Table)
	}
	pc, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, s.scrub(fmt.Errorf("parsing the PostgreSQL DSN: %w", err))
	}
	if cfg.Password != "" {
		pc.Password = cfg.Password
	}
	if s.secret == "" {
		s.secret = pc.Password // from PGPASSWORD, ~/.pgpass or cfg.Password
	}
	if cfg.Notice != nil {
		pc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			if !strings.HasSuffix(n.Message, "already exists, skipping") {
				cfg.Notice(n.Message)
			}
		}
	}
	s.conn, err = pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, s.scrub(fmt.Errorf("connecting to PostgreSQL: %w", err))
	}
	return s, nil
}

// Close closes the connection.
func (s *Sink) Close(ctx context.Context) error {
	if s.conn == nil {
		return nil
	}
	return s.scrub(s.conn.Close(ctx))
}

// Conn returns the sink's connection, for callers that measure the server.
func (s *Sink) Conn() *pgx.Conn { return s.conn }

// Password returns the password a DSN holds ("" when none), so that callers
// can scrub it from anything they print.
func Password(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			return p
		}
	}
	for _, f := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(f, "password="); ok {
			return strings.Trim(v, "'")
		}
	}
	return ""
}

// Redact returns dsn with its password replaced by "xxxxx".
func Redact(dsn string) string {
	p := Password(dsn)
	if p == "" {
		return dsn
	}
	out := strings.ReplaceAll(dsn, url.UserPassword("u", p).String()[2:], "xxxxx")
	return strings.ReplaceAll(out, p, "xxxxx")
}

// scrubbed is an error whose text has the password removed.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// scrub removes the DSN's password from err's text.
func (s *Sink) scrub(err error) error {
	if err == nil || s.secret == "" || !strings.Contains(err.Error(), s.secret) {
		return err
	}
	return &scrubbed{strings.ReplaceAll(err.Error(), s.secret, "xxxxx"), err}
}

// ident quotes a name in the sink's schema.
func (s *Sink) ident(name string) string {
	if s.schema == "" {
		return pgx.Identifier{name}.Sanitize()
	}
	return pgx.Identifier{s.schema, name}.Sanitize()
}

// qualified is the text form of a table name, as regclass and the ledger take it.
func (s *Sink) qualified(name string) string { return s.ident(name) }

// vectorType is the embedding column's type name for the target's dimensions.
func (s *Sink) vectorType() string {
	if s.half {
		return "halfvec"
	}
	return "vector"
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

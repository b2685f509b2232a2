package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// readProgress draws the progress of an estimate's corpus read on a
// terminal: files, MB, documents, tokens and an ETA from the bytes left.
type readProgress struct {
	status      *statusWriter
	start       time.Time
	totalFiles  int
	totalBytes  int64
	sizes       map[string]int64 // by path relative to its root, as documents are named
	mu          sync.Mutex
	seen        map[string]bool
	files       atomic.Int64
	bytes       atomic.Int64
	docs        atomic.Int64
	tokens      atomic.Int64
	stop, ended chan struct{}
}

// startReadProgress walks paths for their sizes and starts drawing; it
// returns nil (and costs nothing) when stderr is not a terminal or --quiet.
func startReadProgress(e *env, paths []string) *readProgress {
	s, ok := e.stderr.(*statusWriter)
	if !ok || !s.tty || e.quiet {
		return nil
	}
	p := &readProgress{status: s, start: time.Now(), sizes: map[string]int64{}, seen: map[string]bool{},
		stop: make(chan struct{}), ended: make(chan struct{})}
	for _, root := range paths {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			rel, err := filepath.Rel(root, path)
			if err != nil || rel == "." {
				rel = filepath.Base(path)
			}
			p.sizes[filepath.ToSlash(rel)] = info.Size()
			p.totalFiles++
			p.totalBytes += info.Size()
			return nil
		})
	}
	go p.draw()
	return p
}

// keep is a corpus Keep filter that keeps everything and counts the files
// whose documents have started.
func (p *readProgress) keep(inner func(string) bool) func(string) bool {
	return func(docID string) bool {
		p.mu.Lock()
		if size, ok := p.sizes[docID]; ok && !p.seen[docID] {
			p.seen[docID] = true
			p.files.Add(1)
			p.bytes.Add(size)
		}
		p.mu.Unlock()
		return inner == nil || inner(docID)
	}
}

// perDocument returns a writer for the per-document TSV that counts its
// documents and tokens, then passes the lines on to w (nil: discard).
func (p *readProgress) perDocument(w io.Writer) io.Writer {
	return &tsvCounter{p: p, w: w}
}

// draw draws the line at once, then every 200 ms until End.
func (p *readProgress) draw() {
	defer close(p.ended)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		p.status.SetStatus(p.line(p.status.width() - 1))
		select {
		case <-p.stop:
			p.status.ClearStatus()
			return
		case <-t.C:
		}
	}
}

// line renders the read's progress in at most width columns: files, MB,
// tokens and the ETA first; the documents only where they fit.
func (p *readProgress) line(width int) string {
	read := p.bytes.Load()
	eta := "-"
	if read > 0 && p.totalBytes > 0 {
		el := time.Since(p.start)
		eta = humanDuration(time.Duration(float64(el) * float64(p.totalBytes-read) / float64(read)).Round(time.Second))
	}
	files := fmt.Sprintf("%s/%s files", commas(p.files.Load()), commas(int64(p.totalFiles)))
	mb := fmt.Sprintf("%.1f/%.1f MB", float64(read)/1e6, float64(p.totalBytes)/1e6)
	docs := plural(p.docs.Load(), "document", "documents")
	tokens := plural(p.tokens.Load(), "token", "tokens")
	full := fmt.Sprintf("reading: %s  %s  %s  %s  ETA %s", files, mb, docs, tokens, eta)
	if utf8.RuneCountInString(full) <= width {
		return full
	}
	return fitWidth(fmt.Sprintf("reading: %s  %s  %s  ETA %s", files, mb, tokens, eta), width)
}

// End stops drawing and clears the line.
func (p *readProgress) End() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.ended
}

// tsvCounter counts the documents and tokens of per-document TSV lines.
type tsvCounter struct {
	p       *readProgress
	w       io.Writer
	partial []byte
	header  bool
}

func (c *tsvCounter) Write(b []byte) (int, error) {
	data := append(c.partial, b...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		line := data[:i]
		data = data[i+1:]
		if !c.header {
			c.header = true
			continue
		}
		var id string
		var tokens int64
		if _, err := fmt.Sscanf(string(bytes.ReplaceAll(line, []byte("\t"), []byte(" \t"))), "%s \t%d", &id, &tokens); err == nil {
			c.p.tokens.Add(tokens)
		}
		c.p.docs.Add(1)
	}
	c.partial = append(c.partial[:0], data...)
	if c.w == nil {
		return len(b), nil
	}
	return c.w.Write(b)
}

// tsvColumns appends columns to each line of a TSV: names to the header,
// values to the other lines.
type tsvColumns struct {
	w             io.Writer
	names, values string
	header        bool
}

func (t *tsvColumns) Write(b []byte) (int, error) {
	var out bytes.Buffer
	for rest := b; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			out.Write(rest)
			break
		}
		out.Write(rest[:i])
		cols := t.values
		if !t.header {
			cols, t.header = t.names, true
		}
		out.WriteString("\t" + cols + "\n")
		rest = rest[i+1:]
	}
	if _, err := t.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}

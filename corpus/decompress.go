package corpus

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Compressed files (gzip, zstd, bzip2) are read transparently. They are
// recognised by their content (magic bytes), whatever their name; the format
// of the content (HTML, JSONL, CSV...) comes from the name without its
// compression extension ("page.html.gz" is HTML, "man1/ls.1.gz" plain text),
// and the document ID keeps the whole file name. Compressed Parquet is not
// read (Parquet needs random access).
//
// A file's decompressed size is capped ([DefaultMaxDecompressedBytes], or
// [Options.MaxDecompressedBytes]) so that a small "decompression bomb" cannot
// fill memory: past the cap the file is skipped ("decompressed size exceeds
// ..."). A record file (JSONL, CSV) keeps the records read before the cap.

// DefaultMaxDecompressedBytes caps the decompressed size of one compressed
// file: 1 GiB.
const DefaultMaxDecompressedBytes int64 = 1 << 30

// zstdMaxWindow bounds the memory a zstd frame may ask for (its window).
const zstdMaxWindow = 128 << 20

// compression is a compressed-stream format.
type compression int

const (
	compressNone compression = iota
	compressGzip
	compressZstd
	compressBzip2
)

func (c compression) String() string {
	return [...]string{"none", "gzip", "zstd", "bzip2"}[c]
}

// sniffCompression recognises a compressed stream by its first bytes.
func sniffCompression(head []byte) compression {
	switch {
	case len(head) >= 3 && head[0] == 0x1f && head[1] == 0x8b && head[2] == 8:
		return compressGzip
	case len(head) >= 4 && bytes.Equal(head[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return compressZstd
	case len(head) >= 4 && head[0] == 'B' && head[1] == 'Z' && head[2] == 'h' && head[3] >= '1' && head[3] <= '9':
		return compressBzip2
	}
	return compressNone
}

// stripCompressionExt returns the name without a compression extension
// (.gz, .gzip, .zst, .zstd, .bz2), which names the content's format.
func stripCompressionExt(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".gz", ".gzip", ".zst", ".zstd", ".bz2", ".tgz":
		return strings.TrimSuffix(name, path.Ext(name))
	}
	return name
}

// decodeError is a failure inside a compressed stream (corrupt data, or the
// size cap): it skips the file instead of ending the scan.
type decodeError struct {
	kind compression
	err  error
}

func (e *decodeError) Error() string {
	if errors.Is(e.err, errTooLarge) {
		return e.err.Error()
	}
	return fmt.Sprintf("corrupt %s data: %v", e.kind, e.err)
}

func (e *decodeError) Unwrap() error { return e.err }

var errTooLarge = errors.New("decompressed size exceeds the limit")

// maxDecompressed is the cap on one file's decompressed size.
func (o *Options) maxDecompressed() int64 {
	if o.MaxDecompressedBytes > 0 {
		return o.MaxDecompressedBytes
	}
	return DefaultMaxDecompressedBytes
}

// decompress returns a reader of r's decompressed content, capped at limit
// bytes; its errors are *decodeError. close releases the decoder.
func decompress(kind compression, r io.Reader, limit int64) (rd io.Reader, close func(), err error) {
	var dec io.Reader
	close = func() {}
	switch kind {
	case compressGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, &decodeError{kind, err}
		}
		dec = zr
	case compressZstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(uint64(limit)+1))
		if err != nil {
			return nil, nil, &decodeError{kind, err}
		}
		dec, close = zr, zr.Close
	case compressBzip2:
		dec = bzip2.NewReader(r)
	default:
		return r, close, nil
	}
	return &capReader{kind: kind, r: dec, left: limit, limit: limit}, close, nil
}

// capReader passes at most limit bytes of r, then fails with errTooLarge if
// r has more; every error it returns other than io.EOF is a *decodeError.
type capReader struct {
	kind  compression
	r     io.Reader
	left  int64
	limit int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		n, err := io.ReadFull(c.r, one[:])
		if n > 0 {
			return 0, &decodeError{c.kind, fmt.Errorf("%w of %s (a decompression bomb?)", errTooLarge, formatBytes(c.limit))}
		}
		return 0, c.wrap(err)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, c.wrap(err)
}

func (c *capReader) wrap(err error) error {
	switch {
	case err == nil || err == io.EOF:
		return err
	case err == io.ErrUnexpectedEOF:
		return &decodeError{c.kind, errors.New("truncated stream")}
	}
	return &decodeError{c.kind, err}
}

// formatBytes renders a size in binary units (1 GiB, 512 MiB, 300 B).
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

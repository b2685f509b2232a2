package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"gocloud.dev/blob"
	// The object storage drivers register their URL schemes on
	// blob.DefaultURLMux. They are imported in this package only, so that
	// the library packages do not carry the cloud SDKs; the s3, gs and azblob
	// drivers are in store_*.go, each of which a build tag leaves out
	// (binary size: GCS adds ~34 MB, S3 ~15 MB, Azure ~8 MB).
	_ "gocloud.dev/blob/fileblob" // file:///path

	"github.com/reembed/reembed/checkpoint"
)

var schemeRE = regexp.MustCompile(`^([a-z][a-z0-9+.-]*)://`)

// isStoreURL reports whether loc names object storage (scheme://...) rather
// than a local directory.
func isStoreURL(loc string) bool { return schemeRE.MatchString(loc) }

// storeLocation is where a checkpoint lives, as given on the command line.
type storeLocation struct {
	raw string // as given; may hold a query with options
	url *url.URL
}

// parseStoreLocation parses --out or --checkpoint: a local path, or
// s3://bucket/prefix, gs://bucket/prefix, azblob://container/prefix or
// file:///dir. flagName is used in errors.
func parseStoreLocation(flagName, loc string) (storeLocation, error) {
	if !isStoreURL(loc) {
		return storeLocation{raw: loc}, nil
	}
	u, err := url.Parse(loc)
	if err != nil {
		return storeLocation{}, usagef("%s: not a valid URL (%v)", flagName, redactErr(err, loc))
	}
	switch u.Scheme {
	case "s3", "gs", "azblob", "file":
	default:
		return storeLocation{}, usagef("%s %s: unknown scheme %q: want a local path, s3://, gs://, azblob:// or file://", flagName, redactURL(u), u.Scheme)
	}
	if !blob.DefaultURLMux().ValidBucketScheme(u.Scheme) {
		return storeLocation{}, usagef("%s %s: this reembed was built without the %s:// driver (build tag reembed_no%s)", flagName, redactURL(u), u.Scheme, u.Scheme)
	}
	if u.Scheme != "file" && u.Host == "" {
		return storeLocation{}, usagef("%s %s: no bucket name: want %s://BUCKET/PREFIX", flagName, redactURL(u), u.Scheme)
	}
	return storeLocation{raw: loc, url: u}, nil
}

// isLocal reports whether the location is a local directory (not a URL).
func (l storeLocation) isLocal() bool { return l.url == nil }

// String returns the location for logs and messages: a URL without user
// information or query (which may carry credentials or endpoints).
func (l storeLocation) String() string {
	if l.url == nil {
		return l.raw
	}
	return redactURL(l.url)
}

// redactURL renders u without its user information and query.
func redactURL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment = nil, "", false, ""
	return c.String()
}

// redactErr returns err's text with the raw location replaced by its redacted
// form, and every query value and user information removed (driver errors may
// quote the URL or one of its options).
func redactErr(err error, raw string) error {
	if err == nil {
		return nil
	}
	u, perr := url.Parse(raw)
	if perr != nil {
		return redactRawErr(err, raw)
	}
	if raw == redactURL(u) {
		return err
	}
	var secrets []string
	for _, vs := range u.Query() {
		secrets = append(secrets, vs...)
	}
	if u.User != nil {
		secrets = append(secrets, u.User.Username())
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p)
		}
	}
	msg := strings.ReplaceAll(err.Error(), raw, redactURL(u))
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return errors.New(msg)
}

// redactRawURL is redactURL for a URL that does not parse: it cuts the
// query, fragment and user information at their delimiters, as url.Parse
// would find them, and returns the location and the parts cut.
func redactRawURL(raw string) (shown string, cut []string) {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		cut = append(cut, raw[i+1:])
		raw = raw[:i]
	}
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+len("://"):]
		authority, _, _ := strings.Cut(rest, "/")
		if j := strings.LastIndexByte(authority, '@'); j >= 0 {
			cut = append(cut, authority[:j])
			raw = raw[:i+len("://")] + rest[j+1:]
		}
	}
	return raw, cut
}

// redactRawErr is redactErr for a location that does not parse (url.Parse
// quotes it in its error, without the fragment when the error is not in it).
func redactRawErr(err error, raw string) error {
	shown, cut := redactRawURL(raw)
	if shown == raw {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), raw, shown)
	if noFrag, _, ok := strings.Cut(raw, "#"); ok { // url.Parse quotes it without the fragment
		msg = strings.ReplaceAll(msg, noFrag, shown)
	}
	slices.SortFunc(cut, func(a, b string) int { return len(b) - len(a) }) // longest first
	for _, s := range cut {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return errors.New(msg)
}

// open returns the store and a function that releases it. A local directory
// is a [checkpoint.Dir] (create it first if it must exist); a URL opens the
// bucket through gocloud.dev/blob with the driver's standard credentials from
// the environment, and the URL's path becomes the key prefix. s3 URLs take
// gocloud's query options (region, endpoint, use_path_style, ...); a
// "prefix" query option is added to the path.
func (l storeLocation) open(ctx context.Context) (checkpoint.Store, func() error, error) {
	if l.url == nil {
		return checkpoint.NewDir(l.raw), func() error { return nil }, nil
	}
	bu := *l.url
	prefix := ""
	if bu.Scheme != "file" {
		prefix = strings.Trim(bu.Path, "/")
		bu.Path, bu.RawPath = "", ""
	}
	bucket, err := blob.DefaultURLMux().OpenBucketURL(ctx, &bu)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", l, redactErr(err, l.raw))
	}
	store, err := checkpoint.NewBlob(bucket, prefix, checkpoint.BlobOptions{})
	if err != nil {
		bucket.Close()
		return nil, nil, &usageError{fmt.Errorf("opening %s: %w", l, err)}
	}
	return store, bucket.Close, nil
}

// exists reports whether a local checkpoint directory exists; object storage
// has no directories, so a URL always "exists" (an empty prefix lists nothing).
func (l storeLocation) exists() error {
	if l.url != nil {
		return nil
	}
	_, err := os.Stat(l.raw)
	return err
}

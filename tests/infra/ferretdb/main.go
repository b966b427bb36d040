// Command ferretdb-switchboard runs an embedded FerretDB 1.x (SQLite backend)
// for the switchboard test-suite. It only listens on loopback addresses.
//
// Usage:
//
//	ferretdb-switchboard -listen 127.0.0.1:27017 -dir /abs/data/dir [-log-level warn] \
//		[-sqlite-pragmas 'wal_autocheckpoint(10000),cache_size(-65536)']
//
// -sqlite-pragmas lists SQLite pragmas, each "name(value)", separated by commas or spaces. Each
// becomes a "_pragma" parameter of the SQLite URI, run on every new connection; FerretDB adds
// busy_timeout(10000), journal_mode(wal) and auto_vacuum(none) unless the list sets them.
//
// Port 0 picks a free port. Once the port accepts connections it prints
//
//	ferretdb listening on 127.0.0.1:PORT
//
// to stdout. SIGTERM/SIGINT stop it cleanly (exit code 0).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on (loopback host:port; port 0 = any free port)")
	dir := flag.String("dir", "", "directory for the SQLite database files (created if missing)")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	pragmas := flag.String("sqlite-pragmas", "", `SQLite pragmas, "name(value)" separated by commas or spaces`)
	flag.Parse()

	if *dir == "" {
		fatalf("-dir is required")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fatalf("bad -dir: %v", err)
	}
	if err = os.MkdirAll(abs, 0o755); err != nil {
		fatalf("cannot create %s: %v", abs, err)
	}

	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		fatalf("bad -listen %q: %v", *listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		fatalf("refusing to listen on non-loopback address %q", *listen)
	}

	var level slog.Level
	if err = level.UnmarshalText([]byte(*logLevel)); err != nil {
		fatalf("bad -log-level %q: %v", *logLevel, err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// The SQLite handler wants a "file:" URI naming a directory, ending with "/".
	sqliteURL := "file:" + strings.TrimSuffix(abs, "/") + "/"
	if q := pragmaQuery(*pragmas); q != "" {
		sqliteURL += "?" + q
	}
	logger.Info("sqlite", slog.String("url", sqliteURL))

	// New binds the TCP socket, so the port is taken once it returns.
	fdb, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		fatalf("%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	done := make(chan error, 1)
	go func() { done <- fdb.Run(ctx) }()

	u, err := url.Parse(fdb.MongoDBURI())
	if err != nil {
		fatalf("cannot parse MongoDB URI: %v", err)
	}
	addr := u.Host

	// Announce readiness only once the port really accepts connections.
	go func() {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				_ = c.Close()
				fmt.Printf("ferretdb listening on %s\n", addr)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		if ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "ferretdb: %s not accepting connections after 60s\n", addr)
		}
	}()

	select {
	case err = <-done:
		if ctx.Err() == nil {
			fatalf("stopped unexpectedly: %v", err)
		}
	case <-ctx.Done():
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			fatalf("shutdown timed out")
		}
	}
	fmt.Println("ferretdb stopped")
}

var pragmaRE = regexp.MustCompile(`^[a-z_]+(\([A-Za-z0-9_-]*\))?$`)

// pragmaQuery turns "a(1), b(2)" into "_pragma=a%281%29&_pragma=b%282%29".
func pragmaQuery(list string) string {
	values := url.Values{}
	for _, p := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' }) {
		if !pragmaRE.MatchString(p) {
			fatalf("bad pragma %q in -sqlite-pragmas (want name(value))", p)
		}
		values.Add("_pragma", p)
	}
	return values.Encode()
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ferretdb: "+format+"\n", args...)
	os.Exit(1)
}

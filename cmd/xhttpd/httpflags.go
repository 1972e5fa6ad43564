package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/xhttpd/xhttpd/httpd"
)

// httpFlags registers the flags that configure the HTTP server and returns
// a function that, after fs.Parse, checks them and builds httpd's Config.
// It opens the access log file, if one is named, and returns it too (nil
// for none, or for stdout): the file stays open for the life of the
// process, reopened at its path on SIGUSR1.
func httpFlags(fs *flag.FlagSet) func() (httpd.Config, *logFile, error) {
	d := httpd.Defaults()
	root := fs.String("root", "", "directory of files to serve (required)")
	cacheMax := fs.Int64("cache-max", d.CacheMax, "largest file held in memory, in bytes; larger ones are read from disk per request (0: no cache)")
	cacheTotal := fs.Int64("cache-total", d.CacheTotal, "memory for cached files in all, in bytes (a reload briefly holds two caches)")
	dotFiles := fs.Bool("serve-dot-files", false, "serve names with a segment that starts with a dot (.git/, .env); by default they are 404, except /.well-known/")
	proxy := fs.String("proxy", "", "upstream HTTP server for dynamic paths, http://host:port[/path], reached through the kernel's sockets")
	dynamic := fs.String("dynamic", "", "path prefixes that go to -proxy, comma-separated: /cgi-bin/ matches below it, /api also /api itself")
	proxyMisses := fs.Bool("proxy-misses", false, "also send to -proxy what Root has no file for (404) and methods other than GET and HEAD (405)")
	proxyDial := fs.Duration("proxy-dial-timeout", d.ProxyDialTimeout, "time to connect to -proxy; then 502")
	proxyTimeout := fs.Duration("proxy-timeout", d.ProxyTimeout, "time for -proxy to send its response head; then 504")
	maxLine := fs.Int("max-request-line", d.MaxRequestLine, "longest request line in bytes; longer gets 414")
	maxHeaderBytes := fs.Int("max-header-bytes", d.MaxHeaderBytes, "largest header block in bytes; larger gets 431")
	maxHeaders := fs.Int("max-headers", d.MaxHeaders, "most header fields; more gets 431")
	headerTimeout := fs.Duration("header-timeout", d.ReadHeaderTimeout, "time from a request's first byte to the end of its head (and between reads of a proxied body); then 408")
	idleTimeout := fs.Duration("idle-timeout", d.IdleTimeout, "time a keep-alive connection may wait for its next request; then it is closed (within 1.125 times it)")
	writeTimeout := fs.Duration("write-timeout", d.WriteTimeout, "time each write to a client (at most 64 KiB of a body) may take; a client that takes nothing is closed after 1 to 1.5 times this")
	maxConns := fs.Int("max-conns", d.MaxConns, "most open HTTP connections; more get 503 and are closed")
	accessLog := fs.String("access-log", "", "append a line per request to this file, - for stdout (default: none); SIGUSR1 reopens the file")
	var accessLogFormat httpd.LogFormat
	fs.TextVar(&accessLogFormat, "access-log-format", httpd.LogCLF, "access log lines: clf (Common Log Format), combined (CLF, Referer, User-Agent) or json")
	return func() (httpd.Config, *logFile, error) {
		if *root == "" {
			return httpd.Config{}, nil, errors.New("-root is required")
		}
		cfg := httpd.Config{
			Root:              *root,
			CacheMax:          *cacheMax,
			CacheTotal:        *cacheTotal,
			ServeDotFiles:     *dotFiles,
			Proxy:             *proxy,
			ProxyMisses:       *proxyMisses,
			ProxyDialTimeout:  *proxyDial,
			ProxyTimeout:      *proxyTimeout,
			MaxRequestLine:    *maxLine,
			MaxHeaderBytes:    *maxHeaderBytes,
			MaxHeaders:        *maxHeaders,
			ReadHeaderTimeout: *headerTimeout,
			IdleTimeout:       *idleTimeout,
			WriteTimeout:      *writeTimeout,
			MaxConns:          *maxConns,
			AccessLogFormat:   accessLogFormat,
		}
		if *cacheMax == 0 {
			cfg.CacheMax = -1 // in httpd's Config, 0 means the default
		}
		for name, v := range map[string]int64{
			"-cache-max": *cacheMax, "-cache-total": *cacheTotal, "-max-request-line": int64(*maxLine),
			"-max-header-bytes": int64(*maxHeaderBytes), "-max-headers": int64(*maxHeaders), "-max-conns": int64(*maxConns),
			"-proxy-dial-timeout": int64(*proxyDial), "-proxy-timeout": int64(*proxyTimeout), "-header-timeout": int64(*headerTimeout),
			"-idle-timeout": int64(*idleTimeout), "-write-timeout": int64(*writeTimeout),
		} {
			if v < 0 || (v == 0 && name != "-cache-max") {
				return httpd.Config{}, nil, fmt.Errorf("%s must be positive", name)
			}
		}
		if *dynamic != "" {
			for _, p := range strings.Split(*dynamic, ",") {
				if p = strings.TrimSpace(p); p != "" {
					cfg.Dynamic = append(cfg.Dynamic, p)
				}
			}
		}
		switch {
		case *proxy == "" && (len(cfg.Dynamic) > 0 || *proxyMisses):
			return httpd.Config{}, nil, errors.New("-dynamic and -proxy-misses need -proxy")
		case *proxy != "" && len(cfg.Dynamic) == 0 && !*proxyMisses:
			return httpd.Config{}, nil, errors.New("-proxy needs -dynamic prefixes or -proxy-misses")
		}
		var lf *logFile
		switch *accessLog {
		case "":
		case "-":
			cfg.AccessLog = os.Stdout
		default:
			var err error
			if lf, err = openLogFile(*accessLog); err != nil {
				return httpd.Config{}, nil, fmt.Errorf("-access-log: %w", err)
			}
			cfg.AccessLog = lf
		}
		return cfg, lf, nil
	}
}

// logFile is the access log's file. reopen opens its path anew and
// switches to the new file, for logrotate, which renames the file and then
// sends SIGUSR1: lines written before the switch go to the renamed file,
// the rest to the new one. httpd writes from one goroutine, about once a
// second; the mutex only keeps reopen from closing the file under a write.
type logFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func openLogFile(path string) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &logFile{path: path, f: f}, nil
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// reopen opens the path again and closes the old file. If the path cannot
// be opened (after -user, it is opened as that user), the old file is
// kept and written on, and the error returned.
func (l *logFile) reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	return old.Close()
}

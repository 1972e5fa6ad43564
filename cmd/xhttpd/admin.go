package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminMux routes the admin listener's paths.
func adminMux(g prometheus.Gatherer, status http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metricsHandler(g))
	mux.Handle("/server-status", status)
	// Profiles of the running server, and the execution tracer's record of
	// which goroutine ran when, for finding where a request's time goes;
	// the admin address is for operators only.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serveAdmin serves /metrics (what g gathers), /server-status and
// /debug/pprof/ on addr with the kernel's sockets: the admin listener
// stays reachable whatever the data path does. It returns a function that
// stops it.
func serveAdmin(addr string, g prometheus.Gatherer, status http.Handler) (stop func(), err error) {
	mux := adminMux(g, status)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-admin: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("admin listener", "err", err)
		}
	}()
	slog.Info("admin", "addr", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// metricsHandler serves what g gathers in the Prometheus text format.
func metricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn)})
}

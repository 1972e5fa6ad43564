package httpd

import (
	"fmt"
	"html/template"
	"io"
	"net/http"
	"runtime"
	"strings"
	"time"
)

// StatusTable is a table a caller adds to the status page, such as the
// data path's queues: httpd shows it and knows nothing of what it says.
// Name is singular ("Queue"); Columns name the cells, the first being the
// row's key ("Queue", "Mode", "Polling"...). In "?auto" the table is a
// line "<Name>s: <rows>" and a line "<Name><key><Column>: <cell>" per
// other cell ("Queue0Mode: hybrid").
type StatusTable struct {
	Name    string
	Columns []string
	Rows    [][]string
}

// scoreChars are the scoreboard's letters by connection state, Apache's
// where Apache has one: R reading a request, W writing a response, K
// waiting for a request on an open connection, C closing; P (xhttpd's own)
// waiting on the upstream or relaying its answer.
var scoreChars = [...]byte{stateIdle: 'K', stateReading: 'R', stateWriting: 'W', stateProxying: 'P', stateClosing: 'C', stateClosed: 'C'}

// statusReport is what one look at the server shows.
type statusReport struct {
	Version    string
	Now        time.Time
	Uptime     time.Duration
	Stats      Stats
	Reading    int
	Writing    int
	KeepAlive  int
	Proxying   int
	Closing    int
	Scoreboard string
	Goroutines int
	Tables     []StatusTable
}

func (s *Server) report(tables func() []StatusTable) statusReport {
	r := statusReport{Version: s.cfg.ServerVersion, Now: time.Now(), Stats: s.Stats(), Goroutines: runtime.NumGoroutine()}
	r.Uptime = r.Now.Sub(s.started)
	var sb strings.Builder
	s.mu.Lock()
	sb.Grow(len(s.conns))
	for c := range s.conns {
		st := c.state.Load()
		switch st {
		case stateIdle:
			r.KeepAlive++
		case stateReading:
			r.Reading++
		case stateWriting:
			r.Writing++
		case stateProxying:
			r.Proxying++
		default:
			r.Closing++
		}
		sb.WriteByte(scoreChars[st])
	}
	s.mu.Unlock()
	r.Scoreboard = sb.String()
	if tables != nil {
		r.Tables = tables()
	}
	return r
}

// StatusHandler returns a handler for a page like Apache's mod_status:
// connections by state with a scoreboard (one letter per open connection),
// request and byte totals and rates, the cache, the limits that were hit,
// the proxy, and the tables the caller adds (tables may be nil; xhttpd
// adds its NIC queues). "?auto" gives the same as "Key: value" lines, with
// Apache's names where Apache has the figure. It is meant for an admin
// listener, not for the served site.
func (s *Server) StatusHandler(tables func() []StatusTable) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r := s.report(tables)
		w.Header().Set("Cache-Control", "no-store")
		if req.URL.Query().Has("auto") {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			r.writeAuto(w)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := statusPage.Execute(w, &r); err != nil {
			s.log.Debug("status page", "err", err)
		}
	})
}

func (r *statusReport) rates() (reqPerSec, bytesPerSec, bytesPerReq float64) {
	secs := max(r.Uptime.Seconds(), 1e-3)
	reqPerSec = float64(r.Stats.Requests) / secs
	bytesPerSec = float64(r.Stats.BytesSent) / secs
	if r.Stats.Requests > 0 {
		bytesPerReq = float64(r.Stats.BytesSent) / float64(r.Stats.Requests)
	}
	return
}

// writeAuto writes the machine-readable form.
func (r *statusReport) writeAuto(w io.Writer) {
	st := r.Stats
	rps, bps, bpr := r.rates()
	kv := func(k string, v any) { fmt.Fprintf(w, "%s: %v\n", k, v) }
	kv("ServerVersion", r.Version)
	kv("CurrentTime", r.Now.UTC().Format(time.RFC3339))
	kv("ServerUptimeSeconds", int64(r.Uptime.Seconds()))
	kv("Uptime", int64(r.Uptime.Seconds()))
	kv("Total Accesses", st.Requests)
	kv("Total kBytes", st.BytesSent/1024)
	kv("ReqPerSec", fmt.Sprintf("%.3f", rps))
	kv("BytesPerSec", fmt.Sprintf("%.1f", bps))
	kv("BytesPerReq", fmt.Sprintf("%.1f", bpr))
	kv("BusyWorkers", r.Reading+r.Writing+r.Proxying+r.Closing)
	kv("IdleWorkers", r.KeepAlive)
	kv("ConnsTotal", st.Open)
	kv("ConnsReading", r.Reading)
	kv("ConnsWriting", r.Writing)
	kv("ConnsKeepAlive", r.KeepAlive)
	kv("ConnsProxying", r.Proxying)
	kv("ConnsClosing", r.Closing)
	kv("ConnsAccepted", st.Accepted)
	kv("ConnsRefused", st.ConnsRefused)
	kv("Goroutines", r.Goroutines)
	kv("Status2xx", st.Status2xx)
	kv("Status3xx", st.Status3xx)
	kv("Status4xx", st.Status4xx)
	kv("Status5xx", st.Status5xx)
	kv("CacheFiles", st.CacheFiles)
	kv("CacheBytes", st.CacheBytes)
	kv("CacheSkipped", st.CacheSkipped)
	kv("CacheReloads", st.CacheReloads)
	kv("CacheHits", st.CacheHits)
	kv("DiskServed", st.DiskServed)
	kv("Hidden", st.Hidden)
	kv("RejectedByLimit", st.RejectedByLimit)
	kv("BadRequests", st.BadRequests)
	kv("HeaderTimeouts", st.HeaderTimeouts)
	kv("URITooLong", st.URITooLong)
	kv("HeaderTooLarge", st.HeaderTooLarge)
	kv("IdleTimeouts", st.IdleTimeouts)
	kv("WriteTimeouts", st.WriteTimeouts)
	kv("ProxyRequests", st.ProxyRequests)
	kv("ProxyErrors", st.ProxyErrors)
	kv("AccessLogLines", st.AccessLogLines)
	kv("AccessLogDropped", st.AccessLogDropped)
	kv("AccessLogErrors", st.AccessLogErrors)
	kv("Panics", st.Panics)
	for _, t := range r.Tables {
		kv(t.Name+"s", len(t.Rows))
		for _, row := range t.Rows {
			for j := 1; j < len(row) && j < len(t.Columns); j++ {
				kv(t.Name+row[0]+t.Columns[j], row[j])
			}
		}
	}
	kv("Scoreboard", r.Scoreboard)
}

// ScoreboardLines cuts the scoreboard into lines of 64, as Apache shows it.
func (r *statusReport) ScoreboardLines() []string {
	var out []string
	for s := r.Scoreboard; len(s) > 0; {
		n := min(len(s), 64)
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

func (r *statusReport) Rates() string {
	rps, bps, bpr := r.rates()
	return fmt.Sprintf("%.1f requests/sec - %.1f kB/second - %.1f B/request", rps, bps/1024, bpr)
}

func (r *statusReport) UptimeString() string { return r.Uptime.Round(time.Second).String() }
func (r *statusReport) NowString() string    { return r.Now.UTC().Format(time.RFC1123) }

var statusPage = template.Must(template.New("status").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>xhttpd status</title>
<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 8px;text-align:right}th{text-align:left}pre{font-size:1.1em}</style>
</head><body>
<h1>xhttpd status</h1>
<p>Server version: {{.Version}}<br>
Current time: {{.NowString}}<br>Server uptime: {{.UptimeString}}<br>
Total accesses: {{.Stats.Requests}} - Total traffic: {{.Stats.BytesSent}} bytes<br>
{{.Rates}}<br>
{{.Stats.Open}} connections open: {{.Reading}} reading, {{.Writing}} writing, {{.KeepAlive}} keep-alive, {{.Proxying}} proxying, {{.Closing}} closing<br>
Goroutines: {{.Goroutines}}</p>
<h2>Scoreboard</h2>
<pre>{{range .ScoreboardLines}}{{.}}
{{else}}(no connections)
{{end}}</pre>
<p>"<b>R</b>" reading request, "<b>W</b>" writing response, "<b>K</b>" keep-alive (waiting for a request),
"<b>P</b>" proxying to the upstream, "<b>C</b>" closing</p>
{{range .Tables}}<h2>{{.Name}}s</h2>
<table><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>{{end}}
<h2>Counters</h2>
<table>
<tr><th>connections accepted</th><td>{{.Stats.Accepted}}</td></tr>
<tr><th>connections refused (503, over the limit)</th><td>{{.Stats.ConnsRefused}}</td></tr>
<tr><th>responses 2xx / 3xx / 4xx / 5xx</th><td>{{.Stats.Status2xx}} / {{.Stats.Status3xx}} / {{.Stats.Status4xx}} / {{.Stats.Status5xx}}</td></tr>
<tr><th>cache: files, bytes, skipped, reloads</th><td>{{.Stats.CacheFiles}}, {{.Stats.CacheBytes}}, {{.Stats.CacheSkipped}}, {{.Stats.CacheReloads}}</td></tr>
<tr><th>served from cache / from disk</th><td>{{.Stats.CacheHits}} / {{.Stats.DiskServed}}</td></tr>
<tr><th>bad requests (400, 505)</th><td>{{.Stats.BadRequests}}</td></tr>
<tr><th>header timeouts (408)</th><td>{{.Stats.HeaderTimeouts}}</td></tr>
<tr><th>request lines too long (414)</th><td>{{.Stats.URITooLong}}</td></tr>
<tr><th>headers too large (431)</th><td>{{.Stats.HeaderTooLarge}}</td></tr>
<tr><th>idle timeouts (closed)</th><td>{{.Stats.IdleTimeouts}}</td></tr>
<tr><th>write timeouts (closed)</th><td>{{.Stats.WriteTimeouts}}</td></tr>
<tr><th>proxied requests / upstream errors</th><td>{{.Stats.ProxyRequests}} / {{.Stats.ProxyErrors}}</td></tr>
<tr><th>access log lines / dropped / failed writes</th><td>{{.Stats.AccessLogLines}} / {{.Stats.AccessLogDropped}} / {{.Stats.AccessLogErrors}}</td></tr>
<tr><th>panics recovered</th><td>{{.Stats.Panics}}</td></tr>
</table>
</body></html>
`))

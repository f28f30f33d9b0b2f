// Peer for scripts/bench-proxy: Go's net/http/httputil.ReverseProxy, the engine Knative's queue-proxy is
// built on, with an upstream Transport sized as queue-proxy sizes it (idle conns = CC, or 1000 when CC = 0).
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
)

// bufferPool reuses 32 KiB copy buffers across requests, as queue-proxy's proxy does.
type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte  { return *(b.pool.Get().(*[]byte)) }
func (b *bufferPool) Put(s []byte) { b.pool.Put(&s) }

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	upstream := flag.String("upstream", "127.0.0.1:8081", "host:port of the HTTP/1.1 upstream")
	cc := flag.Int("container-concurrency", 0, "sizes the idle pool like queue-proxy: CC, or 1000 when 0")
	flag.Parse()

	target, err := url.Parse("http://" + *upstream)
	if err != nil {
		log.Fatalf("-upstream %q: %v", *upstream, err)
	}
	idle := 1000
	if *cc > 0 {
		idle = *cc
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DisableKeepAlives = false
	transport.MaxIdleConns = idle
	transport.MaxIdleConnsPerHost = idle
	transport.ForceAttemptHTTP2 = false
	transport.DisableCompression = true

	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = transport
	proxy.BufferPool = &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}}
	log.Fatal(http.ListenAndServe(*listen, proxy))
}

// HTTP1 parser benchmark: ns per request, throughput and mallocs per parse for Sluice's HTTPHead
// against picohttpparser (Debian's libh2o build) and nodejs http-parser 2.9, on the same two requests
// in the same run. Peers: picohttpparser `phr_parse_request`, http-parser `http_parser_execute`.
import Benchmark
import CNodeHTTPParser
import CPicoHTTPParser
import SluiceCore

/// A browser-style navigation request: about 700 bytes, 10 header fields.
let browserRequest: [UInt8] = Array((
    "GET /assets/2026/11/product-gallery/cover-image-large.jpg?size=1024&format=webp HTTP/1.1\r\n"
    + "Host: www.shop.example.com\r\n"
    + "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0\r\n"
    + "Accept: image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5\r\n"
    + "Accept-Language: en-GB,en;q=0.7,fr;q=0.3\r\n"
    + "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    + "Referer: https://www.shop.example.com/catalog/shoes?page=3&sort=price&color=black&size=42\r\n"
    + "Connection: keep-alive\r\n"
    + "Cookie: session_id=4f2a9c1e7b3d5a60; cart=2|17|93; _ga=GA1.2.1357924680.1732500000; theme=dark; consent=analytics:yes,ads:no; recently_viewed=8812,9031,7710,6623; lang=en\r\n"
    + "Sec-Fetch-Dest: image\r\n"
    + "Sec-Fetch-Mode: no-cors\r\n"
    + "\r\n").utf8)

/// The smallest useful HTTP/1.1 request.
let minimalRequest: [UInt8] = Array("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n".utf8)

let requests: [(name: String, bytes: [UInt8])] = [
    ("browser \(browserRequest.count) B", browserRequest),
    ("minimal \(minimalRequest.count) B", minimalRequest),
]

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal, .instructions],
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )

    for request in requests {
        let bytes = request.bytes

        Benchmark("parse \(request.name): Sluice HTTPHead") { benchmark in
            var head = HTTPHead()
            let span = bytes.span
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(head.parseRequest(span))
            }
            benchmark.stopMeasurement()
            precondition(head.parseRequest(bytes.span) == .complete(bytes.count))
        }

        Benchmark("parse \(request.name): picohttpparser (libh2o)") { benchmark in
            var headers = [phr_header](repeating: phr_header(), count: 100)
            var method: UnsafePointer<CChar>? = nil
            var path: UnsafePointer<CChar>? = nil
            var methodLength = 0
            var pathLength = 0
            var minorVersion: Int32 = 0
            var result: Int32 = 0
            bytes.withUnsafeBytes { raw in
                let base = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
                headers.withUnsafeMutableBufferPointer { h in
                    benchmark.startMeasurement()
                    for _ in benchmark.scaledIterations {
                        var count = 100
                        result = phr_parse_request(base, raw.count, &method, &methodLength, &path, &pathLength,
                                                   &minorVersion, h.baseAddress, &count, 0)
                        blackHole(result)
                    }
                    benchmark.stopMeasurement()
                }
            }
            precondition(Int(result) == bytes.count)
        }

        Benchmark("parse \(request.name): http-parser 2.9") { benchmark in
            var settings = http_parser_settings()
            // The data callbacks a user needs to see the method, target and fields; they do nothing.
            settings.on_url = { _, _, _ in 0 }
            settings.on_header_field = { _, _, _ in 0 }
            settings.on_header_value = { _, _, _ in 0 }
            settings.on_headers_complete = { _ in 0 }
            var parser = http_parser()
            var parsed = 0
            bytes.withUnsafeBytes { raw in
                let base = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    http_parser_init(&parser, HTTP_REQUEST)
                    parsed = http_parser_execute(&parser, &settings, base, raw.count)
                    blackHole(parsed)
                }
                benchmark.stopMeasurement()
            }
            precondition(parsed == bytes.count && parser.http_errno == 0)
        }
    }
}

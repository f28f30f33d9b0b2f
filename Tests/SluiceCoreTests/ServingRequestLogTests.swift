import Testing
@testable import SluiceCore

private let revision = RevisionIdentity(
    name: "hello-00001", namespace: "default", service: "hello", configuration: "hello",
    podName: "hello-00001-deployment-abc", podIP: "10.0.0.7")

private func render(
    _ template: String, headers: [(String, String)] = [("User-Agent", "curl/8.5"), ("Host", "hello.default.example.com")],
    method: String = "GET", target: String = "/path?q=1", code: Int = 200, size: Int = 12,
    latency: Duration = .microseconds(1234), contentLength: Int64 = 0
) throws -> String {
    var renderer = RequestLogRenderer(template: try RequestLogTemplate(compiling: template), revision: revision)
    var output: [UInt8] = []
    renderer.render(
        request: RequestLogRequest(
            method: Array(method.utf8), target: Array(target.utf8), headers: ListedHeaders(headers),
            contentLength: contentLength, remoteAddress: Array("10.0.0.1:54321".utf8)),
        response: RequestLogResponse(code: code, size: size, latency: latency), into: &output)
    return text(output)
}

private func compileError(_ template: String) -> String? {
    do {
        _ = try RequestLogTemplate(compiling: template)
        return nil
    } catch {
        return error.description
    }
}

@Suite("Request log template", .timeLimit(.minutes(1)))
struct ServingRequestLogTests {
    @Test("Knative's default template renders one JSON line per request")
    func defaultTemplate() throws {
        let line = try render(
            ObservabilityConfig.defaultRequestLogTemplate,
            headers: [("User-Agent", "curl/8.5"), ("Referer", "https://a.example/"), ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
            method: "POST", target: "/hello?name=a", code: 201, size: 5, latency: .microseconds(1500), contentLength: 7)
        #expect(line == #"{"httpRequest": {"requestMethod": "POST", "requestUrl": "/hello?name\u003Da", "requestSize": "7", "status": 201, "responseSize": "5", "userAgent": "curl/8.5", "remoteIp": "10.0.0.1:54321", "serverIp": "10.0.0.7", "referer": "https://a.example/", "latency": "0.0015s", "protocol": "HTTP/1.1"}, "traceId": "4bf92f3577b34da6a3ce929d0e0e4736"}"# + "\n")
    }

    @Test("revision fields and request fields render as Go prints them", arguments: [
        ("{{.Revision.Name}} {{.Revision.Namespace}} {{.Revision.Service}} {{.Revision.Configuration}} {{.Revision.PodName}} {{.Revision.PodIP}}",
         "hello-00001 default hello hello hello-00001-deployment-abc 10.0.0.7\n"),
        ("{{.Request.Method}} {{.Request.RequestURI}} {{.Request.Proto}} {{.Request.ProtoMajor}}.{{.Request.ProtoMinor}}", "GET /path?q=1 HTTP/1.1 1.1\n"),
        ("{{.Request.Host}} {{.Request.RemoteAddr}} {{.Request.ContentLength}} {{.Request.UserAgent}}", "hello.default.example.com 10.0.0.1:54321 0 curl/8.5\n"),
        ("{{.Request.URL}}|{{.Request.URL.Path}}|{{.Request.URL.RawQuery}}|{{.Request.URL.Host}}", "/path?q=1|/path|q=1|\n"),
        ("{{.Response.Code}} {{.Response.Size}} {{.Response.Latency}}", "200 12 0.001234\n"),
        ("[{{.TraceID}}] [{{.Request.Referer}}]", "[] []\n"),
    ])
    func fields(template: String, expected: String) throws {
        #expect(try render(template) == expected)
    }

    @Test("latency prints like Go's %v for floats", arguments: [
        (Duration.microseconds(1500), "0.0015"), (.seconds(2), "2"), (.nanoseconds(12), "1.2e-08"),
        (.milliseconds(100), "0.1"), (.seconds(1_234_567), "1.234567e+06"), (.seconds(123_456), "123456"),
        (.microseconds(50), "5e-05"), (.zero, "0"), (.nanoseconds(100_000), "0.0001"),
    ])
    func latencyFormatting(latency: Duration, expected: String) throws {
        #expect(try render("{{.Response.Latency}}", latency: latency) == expected + "\n")
    }

    @Test("index on the header map is a canonical-name lookup printing Go's []string form")
    func indexHeaders() throws {
        let headers = [("x-b3-traceid", "abc"), ("X-Multi", "1"), ("x-multi", "2")]
        #expect(try render(#"{{index .Request.Header "X-B3-Traceid"}}"#, headers: headers) == "[abc]\n")
        #expect(try render(#"{{index .Request.Header "X-Multi"}}"#, headers: headers) == "[1 2]\n")
        #expect(try render(#"{{index .Request.Header "x-b3-traceid"}}"#, headers: headers) == "[]\n", "the key is not canonicalised, as in Go")
        #expect(try render(#"{{index .Request.Header "X-Multi" 1}}"#, headers: headers) == "2\n")
        #expect(try render(#"{{.Request.Header.Get "x-MULTI"}}"#, headers: headers) == "1\n")
        #expect(try render(#"{{.Request.Header.Get "Missing"}}|"#, headers: headers) == "|\n")
    }

    @Test("js, html and urlquery escape as text/template does")
    func escapers() throws {
        let headers = [("X-V", #"a"b'c\d<e>f&g=h"#)]
        #expect(try render(#"{{js (.Request.Header.Get "X-V")}}"#, headers: headers) == #"a\"b\'c\\d\u003Ce\u003Ef\u0026g\u003Dh"# + "\n")
        #expect(try render(#"{{.Request.Header.Get "X-V" | html}}"#, headers: headers) == #"a&#34;b&#39;c\d&lt;e&gt;f&amp;g=h"# + "\n")
        #expect(try render(#"{{urlquery "a b/c?d=é"}}"#) == "a+b%2Fc%3Fd%3D%C3%A9\n")
        #expect(try render(#"{{js "tab\there é \u00a0"}}"#) == #"tab\u0009here é \u00A0"# + "\n")
    }

    @Test("control characters from the request are escaped so they cannot forge log lines (CVE-2024-45808)")
    func controlCharactersEscaped() throws {
        let headers = [("User-Agent", "evil\r\n{\"forged\": true}\u{7f}")]
        #expect(try render("{{.Request.UserAgent}}", headers: headers) == #"evil\u000D\u000A{"forged": true}\u007F"# + "\n")
        #expect(try render(#"{{index .Request.Header "User-Agent"}}"#, headers: headers) == #"[evil\u000D\u000A{"forged": true}\u007F]"# + "\n")
        #expect(try render("{{js .Request.UserAgent}}", headers: headers) == #"evil\u000D\u000A{\"forged\": true}"# + "\u{7f}\n".replacingOccurrences(of: "\u{7f}", with: #"\u007F"#))
    }

    @Test("conditionals, with, comparisons and printf")
    func controlFlow() throws {
        #expect(try render("{{if eq .Response.Code 200}}ok{{else if ge .Response.Code 500}}err{{else}}other{{end}}") == "ok\n")
        #expect(try render("{{if eq .Response.Code 200}}ok{{else if ge .Response.Code 500}}err{{else}}other{{end}}", code: 503) == "err\n")
        #expect(try render("{{if eq .Response.Code 200}}ok{{else if ge .Response.Code 500}}err{{else}}other{{end}}", code: 404) == "other\n")
        #expect(try render(#"{{with .Request.Header.Get "X-Id"}}id={{.}} {{$.Request.Method}}{{else}}none{{end}}"#, headers: [("X-Id", "7")]) == "id=7 GET\n")
        #expect(try render(#"{{with .Request.Header.Get "X-Id"}}id={{.}}{{else}}none{{end}}"#) == "none\n")
        #expect(try render(#"{{printf "%s %d %.3f %q %5d|%-4s|" .Request.Method .Response.Code .Response.Latency "a\"b" 42 "x"}}"#)
            == #"GET 200 0.001 "a\"b"    42|x   |"# + "\n")
        #expect(try render(#"{{printf "%d" .Request.Method}}"#) == "%!d(string=GET)\n")
        #expect(try render("{{print .Response.Code .Response.Size}} {{print \"a\" \"b\"}} {{len .Request.Method}}") == "200 12 ab 3\n")
        #expect(try render("{{and .Request.Method .Response.Code}} {{or \"\" .Request.Method}} {{not true}}") == "200 GET false\n")
        #expect(try render("{{/* a comment */}}x {{- \" y \" -}} z") == "x y z\n")
    }

    @Test("a template that fails while running writes Knative's fallback line")
    func executionFailure() throws {
        #expect(try render(#"{{index .Request.Header "X-None" 0}}"#, method: "PUT", target: "/a\nb", code: 500, latency: .milliseconds(250))
            == #"Invalid request log template: method: PUT, response code: 500, latency: 0.25, url: /a\u000Ab"# + "\n")
        #expect(try render(#"{{eq .Response.Code "200"}}"#).hasPrefix("Invalid request log template: method: GET"))
    }

    @Test("compile errors name the position and the problem", arguments: [
        ("{{.Request.Nope}}", "template:1:3: can't evaluate field .Request.Nope: not a request field Sluice provides"),
        ("a\n{{.Foo}}", "template:2:3: can't evaluate field .Foo: the input has Request, Response, Revision and TraceID"),
        ("{{range .Request.Header}}{{end}}", "template:1:1: {{range}} is not supported in request log templates"),
        ("{{if true}}x", "template:1:1: {{if}} without {{end}}"),
        ("{{end}}", "template:1:1: unexpected {{end}}"),
        ("{{nope .Request.Method}}", "template:1:3: function \"nope\" not defined"),
        ("{{.Request.Method", "template:1:1: unclosed action"),
        ("{{$x := 1}}", "template:1:3: template variables ($name) are not supported"),
        ("{{.Request.Header}}", "template:1:1: printing .Request.Header as a whole is not supported; use index .Request.Header \"Name\" or .Request.Header.Get \"Name\""),
        ("{{.Request.Method | .Response.Code}}", "template:1:21: non executable command in pipeline stage 2"),
        ("{{\"abc}}", "template:1:3: unterminated quoted string"),
    ])
    func compileErrors(template: String, expected: String) {
        #expect(compileError(template) == expected)
    }

    @Test("rendering reuses its buffers: the same renderer renders many lines")
    func reuse() throws {
        var renderer = RequestLogRenderer(template: try RequestLogTemplate(compiling: "{{.Request.Method}} {{.Response.Code}}"), revision: revision)
        var output: [UInt8] = []
        for code in [200, 404, 503] {
            renderer.render(
                request: RequestLogRequest(method: Array("GET".utf8), target: Array("/".utf8), headers: ListedHeaders(), contentLength: 0, remoteAddress: []),
                response: RequestLogResponse(code: code, size: 0, latency: .zero), into: &output)
        }
        #expect(text(output) == "GET 200\nGET 404\nGET 503\n")
    }
}

import Foundation

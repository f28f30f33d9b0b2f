// Test support, files: a temporary directory per test, removed with everything in it when released.
import Foundation
import Glibc

/// A fresh directory under the system's temporary directory; removed on `remove()` or when released.
public final class TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String = "sluice-test") throws {
        path = NSTemporaryDirectory() + "\(prefix)-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Writes `contents` to file `name` in the directory; returns its path.
    @discardableResult
    public func file(_ name: String, _ contents: String) throws -> String {
        let filePath = path + "/" + name
        try contents.write(toFile: filePath, atomically: true, encoding: .utf8)
        return filePath
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
    deinit { remove() }
}

/// The package's root directory (for committed files such as examples/ and the Stat schema).
public let packageRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

// TCP layer: the byte buffers every read lands in and every write is sent from, their slices and the
// per-loop pool. Upper layers parse in place in an IOBuffer and forward IOSlices of it without copying.
import Synchronization

/// A fixed-capacity byte buffer bound to one event loop's thread (not Sendable).
///
/// Bytes `0 ..< count` are written; an `IOSlice` names a sub-range and keeps the buffer alive, so a
/// slice queued on another connection's write queue stays valid however long the write takes. A
/// buffer's written bytes are never changed while anyone else holds a reference to it (the pool and
/// `Connection` only rewrite a buffer they hold uniquely), which is what makes slices immutable views.
/// @safe: the storage pointer never escapes except through `withUnsafeBytes` (itself @unsafe) and
/// the syscall wrappers; every other access is bounds-checked against `count` or `capacity`.
@safe public final class IOBuffer {
    /// Start of `capacity` bytes allocated in `init`, freed in `deinit`, never reallocated.
    let base: UnsafeMutableRawPointer
    /// Bytes of storage.
    public let capacity: Int
    /// Bytes written so far (`0 ..< count` are valid).
    public internal(set) var count: Int {
        get { writtenCount }
        set { writtenCount = newValue }
    }
    /// Internal storage behind `count`: a public stored `var` costs a dynamic exclusivity check
    /// (swift_beginAccess) on every access, and `count` is read several times per request.
    var writtenCount = 0
    /// The pool this buffer returns to (0: none).
    let poolID: Int

    /// An unpooled buffer (freed when the last reference goes).
    public convenience init(capacity: Int) {
        self.init(capacity: capacity, poolID: 0)
    }

    init(capacity: Int, poolID: Int) {
        precondition(capacity > 0, "IOBuffer capacity must be positive")
        self.capacity = capacity
        self.poolID = poolID
        unsafe base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    /// An unpooled buffer holding exactly `bytes` (e.g. a fixed reply built once and sent many times).
    public convenience init(bytes: some Collection<UInt8>) {
        self.init(capacity: max(1, bytes.count))
        _ = append(bytes)
    }

    /// An unpooled buffer holding the UTF-8 bytes of `string`.
    public convenience init(_ string: String) {
        self.init(bytes: Array(string.utf8))
    }

    deinit { unsafe base.deallocate() }

    /// Free bytes after `count`.
    public var freeCapacity: Int { capacity - count }

    /// The byte at `index` (`index < count`).
    public subscript(index: Int) -> UInt8 {
        precondition(index >= 0 && index < count, "IOBuffer index out of range")
        // index is within the written part of the live allocation.
        return unsafe base.load(fromByteOffset: index, as: UInt8.self)
    }

    /// Appends `bytes` if they fit; returns the range they occupy, or nil (nothing written) if not.
    @discardableResult
    public func append(_ bytes: some Collection<UInt8>) -> Range<Int>? {
        let n = bytes.count
        guard n <= freeCapacity else { return nil }
        let start = count
        var offset = start
        for byte in bytes {
            // offset < start + n ≤ capacity, checked above.
            unsafe base.storeBytes(of: byte, toByteOffset: offset, as: UInt8.self)
            offset += 1
        }
        count = offset
        return start ..< offset
    }

    /// Appends `bytes` if they fit (one copy, not a byte loop); returns their range or nil.
    @discardableResult
    public func append(_ bytes: [UInt8]) -> Range<Int>? {
        let n = bytes.count
        guard n <= freeCapacity else { return nil }
        let start = writtenCount
        unsafe bytes.withUnsafeBytes { source in
            // start + n ≤ capacity (checked above); `source` is valid for the closure's duration.
            if let from = source.baseAddress { unsafe (base + start).copyMemory(from: from, byteCount: n) }
        }
        writtenCount = start + n
        return start ..< start + n
    }

    /// Appends the UTF-8 bytes of `string` if they fit; returns their range or nil.
    @discardableResult
    public func append(_ string: String) -> Range<Int>? {
        append(string.utf8)
    }

    /// Appends the bytes of `other[range]` if they fit; returns their range or nil.
    @discardableResult
    public func append(_ other: IOBuffer, range: Range<Int>) -> Range<Int>? {
        precondition(range.lowerBound >= 0 && range.upperBound <= other.count, "IOBuffer range out of bounds")
        guard range.count <= freeCapacity else { return nil }
        let start = count
        // Both ranges lie inside live allocations (checked above); memmove allows overlap when other === self.
        unsafe (base + start).copyMemory(from: other.base + range.lowerBound, byteCount: range.count)
        count += range.count
        return start ..< count
    }

    /// A view of `range` that keeps this buffer alive (for writes and for parsed fields).
    public func slice(_ range: Range<Int>) -> IOSlice {
        IOSlice(self, range)
    }

    /// A view of every written byte.
    public var written: IOSlice { IOSlice(self, 0 ..< count) }

    /// Calls `body` with a bounds-checked span over `range` (parse in place without copying).
    public func withSpan<R, E: Error>(_ range: Range<Int>, _ body: (Span<UInt8>) throws(E) -> R) throws(E) -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "IOBuffer range out of bounds")
        // The range is inside the written bytes of the live allocation, and the span does not outlive `body`.
        let pointer = unsafe UnsafeBufferPointer(start: (base + range.lowerBound).assumingMemoryBound(to: UInt8.self), count: range.count)
        let span = unsafe Span(_unsafeElements: pointer)
        return try body(span)
    }

    /// Calls `body` with raw bytes of `range`: for a parser's scanning core only, which must not keep the pointer.
    @unsafe
    public func withUnsafeBytes<R, E: Error>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "IOBuffer range out of bounds")
        // In bounds (checked above); the pointer is valid while `self` lives, which spans the call.
        return try unsafe body(UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }

    /// The bytes of `range` copied into an array (tests, logs, error paths; not for the hot path).
    public func bytes(_ range: Range<Int>) -> [UInt8] {
        withSpan(range) { span in
            var out = [UInt8]()
            out.reserveCapacity(span.count)
            for i in span.indices { out.append(span[i]) }
            return out
        }
    }

    /// Moves `range` to the front and makes it the whole content. Only for a uniquely held buffer.
    func moveToFront(_ range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        if range.lowerBound > 0 && !range.isEmpty {
            // Both ranges lie in the allocation; copyMemory is memmove and tolerates the overlap.
            unsafe base.copyMemory(from: base + range.lowerBound, byteCount: range.count)
        }
        count = range.count
    }

    /// Forgets the content. Only for a uniquely held buffer.
    public func clear() { count = 0 }
}

/// A range of an IOBuffer's written bytes; holding it keeps the buffer alive. Not Sendable: bound to
/// the buffer's loop. Slices may be queued on any connection of the same loop.
public struct IOSlice {
    public let buffer: IOBuffer
    public let range: Range<Int>

    public init(_ buffer: IOBuffer, _ range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= buffer.count, "IOSlice out of the buffer's written bytes")
        self.buffer = buffer
        self.range = range
    }

    public var count: Int { range.count }

    /// The part after the first `n` bytes.
    public func dropFirst(_ n: Int) -> IOSlice {
        IOSlice(buffer, (range.lowerBound + min(n, range.count)) ..< range.upperBound)
    }

    /// The first `n` bytes.
    public func prefix(_ n: Int) -> IOSlice {
        IOSlice(buffer, range.lowerBound ..< (range.lowerBound + min(n, range.count)))
    }

    /// The slice's bytes copied into an array (tests and error paths).
    public var bytes: [UInt8] { buffer.bytes(range) }
}

/// Buffers of one size, recycled on one loop so that steady-state traffic allocates nothing and an idle
/// connection holds no buffer. Bound to its loop's thread.
public final class IOBufferPool {
    private static let nextID = Atomic<Int>(1)

    /// Capacity of each pooled buffer.
    public let bufferSize: Int
    /// Free buffers kept at most; more are freed.
    public let maxFreeBuffers: Int
    let id: Int
    private var free: [IOBuffer] = []
    /// Buffers handed out since creation that had to be allocated (for tests and metrics).
    public private(set) var allocations = 0

    public init(bufferSize: Int = 16 * 1024, maxFreeBuffers: Int = 256) {
        precondition(bufferSize > 0 && maxFreeBuffers >= 0)
        self.bufferSize = bufferSize
        self.maxFreeBuffers = maxFreeBuffers
        id = Self.nextID.add(1, ordering: .relaxed).newValue
        free.reserveCapacity(min(maxFreeBuffers, 1024))
    }

    /// Buffers currently waiting in the pool.
    public var freeCount: Int { free.count }

    /// An empty buffer of `bufferSize` bytes.
    public func take() -> IOBuffer {
        if let buffer = free.popLast() { return buffer }
        allocations += 1
        return IOBuffer(capacity: bufferSize, poolID: id)
    }

    /// Gives `buffer` back and sets the variable to nil. A buffer still referenced elsewhere (a slice
    /// on a write queue) is only dropped here; whoever releases the last reference recycles it.
    public func recycle(_ buffer: inout IOBuffer?) {
        guard buffer != nil else { return }
        if isKnownUniquelyReferenced(&buffer!), let owned = buffer, owned.poolID == id, free.count < maxFreeBuffers {
            owned.count = 0
            buffer = nil
            free.append(owned)
        } else {
            buffer = nil
        }
    }
}

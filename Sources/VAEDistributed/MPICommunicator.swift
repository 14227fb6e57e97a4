import CMPI
import Foundation

/// Open MPI over the CMPI shim. Errors return codes (MPI_ERRORS_RETURN on the world
/// communicator) and every code goes through `check`, which names the call.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public var backend: String { "mpi" }
    private let world: MPI_Comm
    private var pending: [MPI_Request?] = []
    private var finalized = false

    public init() throws(CommunicatorError) {
        var initialized: Int32 = 0
        try Self.check(MPI_Initialized(&initialized), "MPI_Initialized")
        if initialized == 0 {
            try Self.check(MPI_Init(nil, nil), "MPI_Init")
        }
        world = vae_mpi_comm_world()
        try Self.check(vae_mpi_errors_return(world), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try Self.check(MPI_Comm_rank(world, &r), "MPI_Comm_rank")
        try Self.check(MPI_Comm_size(world, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
        pending.reserveCapacity(64)
    }

    static func check(_ code: Int32, _ call: @autoclosure () -> String) throws(CommunicatorError) {
        guard code != vae_mpi_success() else { return }
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        let message = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        throw CommunicatorError(call: call(), message: "\(message) (code \(code))")
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws(CommunicatorError) {
        try Self.check(MPI_Allreduce(vae_mpi_in_place(), buffer, Int32(count), vae_mpi_float(), vae_mpi_sum(), world),
                       "MPI_Allreduce(float, \(count))")
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws(CommunicatorError) {
        try Self.check(MPI_Allreduce(vae_mpi_in_place(), buffer, Int32(count), vae_mpi_double(), vae_mpi_sum(), world),
                       "MPI_Allreduce(double, \(count))")
    }

    public func allreduceMinMax(_ value: UInt64) throws(CommunicatorError) -> (min: UInt64, max: UInt64) {
        var low = value, high = value
        try Self.check(MPI_Allreduce(vae_mpi_in_place(), &low, 1, vae_mpi_uint64(), vae_mpi_min(), world), "MPI_Allreduce(min)")
        try Self.check(MPI_Allreduce(vae_mpi_in_place(), &high, 1, vae_mpi_uint64(), vae_mpi_max(), world), "MPI_Allreduce(max)")
        return (low, high)
    }

    public func startAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws(CommunicatorError) {
        var request = vae_mpi_request_null()
        try Self.check(MPI_Iallreduce(vae_mpi_in_place(), buffer, Int32(count), vae_mpi_float(), vae_mpi_sum(), world, &request),
                       "MPI_Iallreduce(float, \(count))")
        pending.append(request)
    }

    public func finishReductions() throws(CommunicatorError) {
        if pending.isEmpty { return }
        let count = Int32(pending.count)
        let code = pending.withUnsafeMutableBufferPointer { MPI_Waitall(count, $0.baseAddress, nil) }
        pending.removeAll(keepingCapacity: true)
        try Self.check(code, "MPI_Waitall")
    }

    public func progressReductions() throws(CommunicatorError) {
        if pending.isEmpty { return }
        var done: Int32 = 0
        let count = Int32(pending.count)
        let code = pending.withUnsafeMutableBufferPointer { MPI_Testall(count, $0.baseAddress, &done, nil) }
        try Self.check(code, "MPI_Testall")
        if done != 0 { pending.removeAll(keepingCapacity: true) }
    }

    public func reduceScatterSum(_ input: UnsafePointer<Float>, shards: Shards, into output: UnsafeMutablePointer<Float>) throws(CommunicatorError) {
        let code = shards.counts.withUnsafeBufferPointer {
            MPI_Reduce_scatter(input, output, $0.baseAddress, vae_mpi_float(), vae_mpi_sum(), world)
        }
        try Self.check(code, "MPI_Reduce_scatter(float, \(shards.total))")
    }

    public func allgatherInPlace(_ buffer: UnsafeMutablePointer<Float>, shards: Shards) throws(CommunicatorError) {
        let code = shards.counts.withUnsafeBufferPointer { c in
            shards.offsets.withUnsafeBufferPointer { o in
                MPI_Allgatherv(vae_mpi_in_place(), 0, vae_mpi_float(), buffer, c.baseAddress, o.baseAddress, vae_mpi_float(), world)
            }
        }
        try Self.check(code, "MPI_Allgatherv(float, \(shards.total))")
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) throws(CommunicatorError) {
        // MPI counts are Int32: send large buffers in chunks of 1 GiB.
        var offset = 0
        repeat {
            let chunk = min(byteCount - offset, 1 << 30)
            try Self.check(MPI_Bcast(buffer + offset, Int32(chunk), vae_mpi_byte(), Int32(root), world), "MPI_Bcast(\(byteCount) bytes)")
            offset += chunk
        } while offset < byteCount
    }

    public func allgather(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws(CommunicatorError) {
        try Self.check(MPI_Allgather(input, Int32(count), vae_mpi_float(), output, Int32(count), vae_mpi_float(), world),
                       "MPI_Allgather(float, \(count))")
    }

    public func barrier() throws(CommunicatorError) {
        try Self.check(MPI_Barrier(world), "MPI_Barrier")
    }

    public func abort(code: Int32) -> Never {
        fflush(nil)
        MPI_Abort(world, code)
        exit(code)  // MPI_Abort does not return; this satisfies the type checker.
    }

    public func finalize() {
        guard !finalized else { return }
        finalized = true
        MPI_Finalize()
    }
}

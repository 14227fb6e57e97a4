import CMPI

// Ranks grouped by node for the hierarchical reduction (HierarchicalReduction.swift): the node's
// communicator (MPI_Comm_split_type shared, which the shared-memory windows use too) and, across
// nodes, one communicator per local rank (MPI_Comm_split by local rank): with k ranks on every
// node, local rank i of every node reduces block i of the node sums, so each node sends one
// gradient over its link, cut in k parts that travel in parallel.

extension MPICommunicator {
    public func nodeLayout() throws(CommunicatorError) -> NodeLayout? {
        guard size > 1 else { return nil }
        let localSize = try nodeSize()
        var localRank: Int32 = 0
        try Self.check(MPI_Comm_rank(node, &localRank), "MPI_Comm_rank(node)")
        let (fewest, most) = try allreduceMinMax(UInt64(localSize))
        // Nodes counted by their local rank 0 (exact in a Double).
        var leaders: Double = localRank == 0 ? 1 : 0
        try allreduceSum(&leaders, count: 1)
        guard leaders > 1, most > 1 else { return nil }
        if crossNode == nil {
            var comm: MPI_Comm?
            try Self.check(MPI_Comm_split(world, localRank, Int32(rank), &comm), "MPI_Comm_split(local rank \(localRank))")
            try Self.check(vae_mpi_errors_return(comm), "MPI_Comm_set_errhandler(across nodes)")
            crossNode = comm
        }
        var crossRank: Int32 = 0, crossSize: Int32 = 0
        try Self.check(MPI_Comm_rank(crossNode, &crossRank), "MPI_Comm_rank(across nodes)")
        try Self.check(MPI_Comm_size(crossNode, &crossSize), "MPI_Comm_size(across nodes)")
        return NodeLayout(localRank: Int(localRank), localSize: localSize, nodes: Int(leaders), uniform: fewest == most,
                          crossNodeRank: Int(crossRank), crossNodeSize: Int(crossSize))
    }

    public func allocateNodeShared(count: Int) throws(CommunicatorError) -> UnsafeMutablePointer<Float>? {
        guard size > 1 else { return nil }
        _ = try nodeSize()
        let memory = try allocateWindow(count: count)
        // Every node has its memory, or no rank uses it (a window left mapped is freed at finalize).
        let (fewest, _) = try allreduceMinMax(memory == nil ? 0 : 1)
        return fewest == 1 ? memory : nil
    }

    public func crossNodeAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws(CommunicatorError) {
        guard let crossNode else { throw CommunicatorError(call: "crossNodeAllreduceSum", message: "nodeLayout() first") }
        let sequence = try enter()
        var request: MPI_Request? = vae_mpi_request_null()
        try Self.check(MPI_Iallreduce(vae_mpi_in_place(), buffer, Int32(count), vae_mpi_float(), vae_mpi_sum(), crossNode, &request),
                       "MPI_Iallreduce(across nodes, \(count))")
        try wait(&request, sequence: sequence, call: "MPI_Iallreduce(across nodes)")
    }

    public func crossNodeExchangeBlocks(_ send: UnsafeRawPointer, into received: UnsafeMutableRawPointer, exchange: BlockExchange) throws(CommunicatorError) {
        guard let crossNode else { throw CommunicatorError(call: "crossNodeExchangeBlocks", message: "nodeLayout() first") }
        try exchangeBlocks(send, into: received, exchange: exchange, on: crossNode)
    }

    public func crossNodeAllgatherBlocksInPlace(_ buffer: UnsafeMutableRawPointer, exchange: BlockExchange) throws(CommunicatorError) {
        guard let crossNode else { throw CommunicatorError(call: "crossNodeAllgatherBlocksInPlace", message: "nodeLayout() first") }
        try allgatherBlocksInPlace(buffer, exchange: exchange, on: crossNode)
    }
}

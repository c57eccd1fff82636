/// The store's side of the maintenance queue: what each job does.
extension EventStore {
    /// Runs `job` on the maintenance queue after the jobs already scheduled. The job holds the
    /// store only while it runs, so a store dropped without ``close()`` releases its lock as
    /// soon as the current job ends.
    func scheduleMaintenance(_ job: MaintenanceJob) {
        guard !options.readOnly else { return }
        maintenance.schedule(job) { [weak self] in
            self?.closed.load(ordering: .relaxed) ?? true
        } run: { [weak self] job in
            self?.run(job)
        }
    }

    private func run(_ job: MaintenanceJob) -> MaintenanceFailure? {
        let failure = perform(job)
        if let failure { reportMaintenanceFailure(failure) }
        return failure
    }

    private func perform(_ job: MaintenanceJob) -> MaintenanceFailure? {
        switch job {
        case .indexFiles(let frames, let nextPosition, let lastSegment):
            if let failure = writeIndexFiles(for: frames, nextPosition: nextPosition, lastSegment: lastSegment) {
                return failure
            }
            return mergeIndexFiles()
        case .mergeIndexFiles:
            return mergeIndexFiles()
        case .checkpoint(let checkpoint):
            do { try checkpointer.write(checkpoint) } catch {
                return MaintenanceFailure(what: "writing the checkpoint", error: error)
            }
            return nil
        case .prepareSegment:
            return prepareSegmentFile()
        case .archiveSegments:
            return archiveByPolicy()
        }
    }

    /// What the background work failed to do since open (see ``MaintenanceStatus``).
    public var maintenanceStatus: MaintenanceStatus { maintenance.currentStatus }
}

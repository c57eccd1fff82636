/// What a command failed for, whatever the aggregate: one type to switch on across
/// repositories of different aggregates (``RepositoryError`` is generic over each aggregate's
/// rejection).
///
/// ```swift
/// do {
///     try await books.execute(.borrow(member: "m1"), on: "b1")
///     try await members.execute(.recordLoan(book: "b1"), on: "m1")
/// } catch let error as any CommandFailing {
///     switch error.failure {
///     case .rejected(let rejection): print("refused: \(rejection)")
///     case .tooManyConflicts, .append, .read, .decoding, .encoding: throw error
///     }
/// }
/// ```
public enum CommandFailure: Error {
    /// The aggregate refused the command (its rejection value); nothing was written.
    case rejected(any Error)
    /// Other writers kept changing the aggregate; gave up after this many decisions.
    case tooManyConflicts(stream: String, attempts: Int)
    /// The store refused the append.
    case append(AppendError)
    /// Reading the stream failed.
    case read(ReadError)
    /// An event of a known type could not be decoded.
    case decoding(EventDecodingError)
    /// The codec could not encode an event.
    case encoding(String)
}

/// An error that says what a command failed for (every ``RepositoryError`` does).
public protocol CommandFailing: Error {
    /// The failure, with the rejection type erased.
    var failure: CommandFailure { get }
}

extension RepositoryError: CommandFailing {
    public var failure: CommandFailure {
        switch self {
        case .rejected(let rejection): .rejected(rejection)
        case .tooManyConflicts(let stream, let attempts): .tooManyConflicts(stream: stream, attempts: attempts)
        case .append(let error): .append(error)
        case .read(let error): .read(error)
        case .decoding(let error): .decoding(error)
        case .encoding(let reason): .encoding(reason)
        }
    }
}

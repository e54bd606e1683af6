namespace Apm.Jvm.Attach;

/// <summary>An attach request that failed, with a machine-readable <see cref="Reason"/> and a message for operators.</summary>
public sealed class AttachException : Exception
{
    /// <summary>Creates an exception for a failed request.</summary>
    public AttachException(AttachFailure reason, int pid, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Reason = reason;
        Pid = pid;
    }

    /// <summary>Creates an exception with no reason detail; prefer the constructor that takes a reason.</summary>
    public AttachException()
        : this(AttachFailure.ProtocolError, 0, "attach failed")
    {
    }

    /// <summary>Creates an exception with a message and no reason detail.</summary>
    public AttachException(string message)
        : this(AttachFailure.ProtocolError, 0, message)
    {
    }

    /// <summary>Creates an exception with a message and cause and no reason detail.</summary>
    public AttachException(string message, Exception innerException)
        : this(AttachFailure.ProtocolError, 0, message, innerException)
    {
    }

    /// <summary>Why the request failed.</summary>
    public AttachFailure Reason { get; }

    /// <summary>Host pid of the target process.</summary>
    public int Pid { get; }

    /// <summary>For <see cref="AttachFailure.CommandFailed"/>: the status code the JVM returned; otherwise null.</summary>
    public int? Status { get; init; }
}

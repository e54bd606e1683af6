namespace Apm.Jvm.Attach;

/// <summary>Why an attach request failed; the collector counts and reports failures by this reason.</summary>
public enum AttachFailure
{
    /// <summary>No process has this pid (or it is already a zombie).</summary>
    ProcessNotFound,

    /// <summary>The process is not a HotSpot JVM (no libjvm.so mapped), so it was not signalled.</summary>
    NotAJvm,

    /// <summary>The JVM was started with -XX:+DisableAttachMechanism (or -Xrs, which would make SIGQUIT kill it).</summary>
    AttachDisabled,

    /// <summary>The JVM inherited SIGQUIT as ignored (a background job of a non-interactive shell) and cannot be woken.</summary>
    SigquitIgnored,

    /// <summary>The caller may not signal or connect to the JVM (another user, and the caller is not root).</summary>
    PermissionDenied,

    /// <summary>A step (socket wait, connect, write, read) did not finish within the request's timeout.</summary>
    Timeout,

    /// <summary>The JVM exited while the request was in flight.</summary>
    ProcessExited,

    /// <summary>The peer answered something that is not an attach response (non-numeric status, oversized body).</summary>
    ProtocolError,

    /// <summary>The JVM answered with a non-zero status; the message is the JVM's own text.</summary>
    CommandFailed,
}

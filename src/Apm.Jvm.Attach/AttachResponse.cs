namespace Apm.Jvm.Attach;

/// <summary>The JVM's answer to one attach request: the status line (0 is success) and the rest of the text.</summary>
/// <param name="Pid">Host pid of the JVM that answered.</param>
/// <param name="Status">Decimal status from the first line; 0 means the command ran.</param>
/// <param name="Output">Everything after the status line, decoded as UTF-8.</param>
public sealed record AttachResponse(int Pid, int Status, string Output)
{
    /// <summary>Whether the JVM reported success.</summary>
    public bool IsSuccess => Status == 0;

    /// <summary>Returns this response, or throws <see cref="AttachFailure.CommandFailed"/> with the JVM's message.</summary>
    public AttachResponse EnsureSuccess(string command)
    {
        if (IsSuccess) return this;
        var message = Output.Trim();
        if (message.Length > 2000) message = message[..2000] + "...";
        throw new AttachException(AttachFailure.CommandFailed, Pid,
            $"JVM {Pid} answered status {Status} to '{command}': {(message.Length == 0 ? "(no message)" : message)}")
        {
            Status = Status,
        };
    }
}

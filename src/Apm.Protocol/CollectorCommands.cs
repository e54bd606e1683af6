namespace Apm.Protocol.V1;

/// <summary>Builds collector commands the same way wherever they are sent from (rules, API, dashboard).</summary>
public sealed partial class CollectorCommand
{
    /// <summary>A heap-dump command with a fresh id, issued now and expiring after <paramref name="expiry"/>.</summary>
    public static CollectorCommand ForHeapDump(string jvmId, string host, TimeSpan expiry, string trigger, string requestedBy, string alertId = "", bool allObjects = false)
    {
        var now = DateTimeOffset.UtcNow;
        return new CollectorCommand
        {
            CommandId = Guid.NewGuid().ToString("N"),
            TargetHost = host,
            JvmId = jvmId,
            IssuedUnixMs = now.ToUnixTimeMilliseconds(),
            ExpiresUnixMs = (now + expiry).ToUnixTimeMilliseconds(),
            Trigger = trigger,
            AlertId = alertId,
            RequestedBy = requestedBy,
            HeapDump = new HeapDumpRequest { AllObjects = allObjects },
        };
    }
}

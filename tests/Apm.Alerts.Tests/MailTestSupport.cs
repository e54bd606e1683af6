using Apm.Alerts.Mail;

namespace Apm.Alerts.Tests;

/// <summary>A clock the outbox tests move by hand, so backoff is tested without waiting.</summary>
internal sealed class MailTestClock(DateTimeOffset start) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = start;

    public override DateTimeOffset GetUtcNow() => Now;
}

/// <summary>Notifications and options shared by the mail tests.</summary>
internal static class MailTestData
{
    public const string HostileClass = "<script>alert(1)</script>";

    public static readonly Uri Dashboard = new("http://dashboard.test:3000/apm/");

    public static AlertNotification Notification(string state = AlertNotification.Firing, string displayName = "com.acme.OrderService@web-1", string rule = "FinalizerBacklog") =>
        new(
            AlertId: "alert-" + Guid.NewGuid().ToString("N")[..8],
            JvmId: "web-1/4242",
            JvmDisplayName: displayName,
            Rule: rule,
            State: state,
            FiredAt: new DateTimeOffset(2026, 11, 21, 23, 0, 0, TimeSpan.Zero),
            ResolvedAt: state == AlertNotification.Resolved ? new DateTimeOffset(2026, 11, 21, 23, 30, 0, TimeSpan.Zero) : null,
            Summary: "The finalizer queue grew from 120 to 48,000 objects in 10 minutes.",
            Evidence: [("Queue length (start)", "120"), ("Queue length (end)", "48000"), ("Window", "10 min")],
            TopClasses: ["com.acme.db.PooledStatement", HostileClass]);

    public static SmtpOptions Options(int port) => new()
    {
        Host = "127.0.0.1",
        Port = port,
        From = "apm@alerts.test",
        To = SmtpOptions.ParseRecipients("oncall@ops.test, dba@ops.test"),
        Timeout = TimeSpan.FromSeconds(10),
        DashboardBaseUrl = Dashboard,
        RetryBaseDelay = TimeSpan.FromSeconds(30),
        RetryMaxDelay = TimeSpan.FromMinutes(10),
    };

    public static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "apm-mail-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        return dir;
    }
}

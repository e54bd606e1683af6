using Apm.Alerts.Mail;
using Apm.Testing;
using Microsoft.Extensions.Logging;

namespace Apm.Alerts.Tests;

/// <summary>SMTP login (AUTH over plain TCP) against a real aiosmtpd that requires it.</summary>
public sealed class MailLoginTests : IDisposable
{
    private const string User = "apm-alerts";
    private const string Password = "s3cret-Pa55word!";
    private readonly string _dir = MailTestData.TempDir();

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task With_the_right_user_and_password_the_mail_is_delivered_after_login()
    {
        using var smtp = await SmtpServer.StartWithLoginAsync(User, Password);
        using var outbox = new MailOutbox(_dir, WithLogin(smtp.Port, Password));
        outbox.Enqueue(MailTestData.Notification());

        Assert.Equal(1, await outbox.DeliverPendingAsync());

        var mail = Assert.Single(await smtp.WaitForMessagesAsync(1));
        Assert.Equal("[Apm] FIRING FinalizerBacklog on com.acme.OrderService@web-1", mail.Subject);
        Assert.True(await smtp.WaitForLogAsync($"AUTH LOGIN ok {User}"), smtp.Log());
        Assert.Equal(0, outbox.Pending);
        Assert.Equal(0, outbox.LoginFailures);
    }

    [Fact]
    public async Task A_wrong_password_is_a_clear_counted_error_the_message_stays_in_the_outbox_and_no_password_is_logged()
    {
        using var smtp = await SmtpServer.StartWithLoginAsync(User, Password);
        var logger = new ListLogger();
        const string wrong = "wrong-Pa55word?";
        using var outbox = new MailOutbox(_dir, WithLogin(smtp.Port, wrong), logger);
        var path = outbox.Enqueue(MailTestData.Notification());

        Assert.Equal(0, await outbox.DeliverPendingAsync());

        Assert.Equal(1, outbox.Pending);
        Assert.Equal(1, outbox.FailedAttempts);
        Assert.Equal(1, outbox.LoginFailures);
        Assert.Empty(smtp.Messages);
        Assert.True(await smtp.WaitForLogAsync($"AUTH LOGIN refused {User}"), smtp.Log());
        var entry = MailOutbox.TryRead(path);
        Assert.NotNull(entry);
        Assert.Equal(1, entry.Attempts);
        Assert.Contains($"login as '{User}' was refused", entry.LastError, StringComparison.Ordinal);
        Assert.Contains("Apm__Smtp__Password", entry.LastError, StringComparison.Ordinal);
        var logged = string.Join("\n", logger.Lines);
        Assert.Contains($"login as '{User}' was refused", logged, StringComparison.Ordinal);
        foreach (var secret in new[] { wrong, Password })
        {
            Assert.DoesNotContain(secret, logged, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, File.ReadAllText(path), StringComparison.Ordinal);
        }
    }

    private static SmtpOptions WithLogin(int port, string password)
    {
        var o = MailTestData.Options(port);
        return new SmtpOptions
        {
            Host = o.Host,
            Port = o.Port,
            From = o.From,
            To = o.To,
            Timeout = o.Timeout,
            DashboardBaseUrl = o.DashboardBaseUrl,
            Username = User,
            Password = password,
        };
    }

    /// <summary>Keeps every formatted log line (with its exception), to check what reaches the logs.</summary>
    private sealed class ListLogger : ILogger<MailOutbox>
    {
        public List<string> Lines { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Lines) Lines.Add(formatter(state, exception) + (exception is null ? "" : " " + exception));
        }
    }
}

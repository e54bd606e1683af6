using Apm.Alerts.Mail;
using Apm.Testing;

namespace Apm.Alerts.Tests;

/// <summary>The outbox against Debian's real aiosmtpd on a free loopback port.</summary>
public sealed class MailOutboxTests : IDisposable
{
    private readonly string _dir = MailTestData.TempDir();
    private readonly MailTestClock _clock = new(new DateTimeOffset(2026, 11, 22, 0, 0, 0, TimeSpan.Zero));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Firing_and_resolved_mails_arrive_with_subject_text_html_evidence_and_classes()
    {
        using var smtp = await SmtpServer.StartNewAsync();
        using var outbox = new MailOutbox(_dir, MailTestData.Options(smtp.Port), timeProvider: _clock);
        var firing = MailTestData.Notification();
        outbox.Enqueue(firing);
        outbox.Enqueue(firing with { State = AlertNotification.Resolved, ResolvedAt = firing.FiredAt.AddMinutes(30) });
        Assert.Equal(2, outbox.Pending);

        Assert.Equal(2, await outbox.DeliverPendingAsync());

        var mails = await smtp.WaitForMessagesAsync(2);
        Assert.Equal(0, outbox.Pending);
        Assert.Equal(2, outbox.Sent);
        Assert.Equal(0, outbox.FailedAttempts);
        Assert.Equal("[Apm] FIRING FinalizerBacklog on com.acme.OrderService@web-1", mails[0].Subject);
        Assert.Equal("[Apm] RESOLVED FinalizerBacklog on com.acme.OrderService@web-1", mails[1].Subject);
        foreach (var mail in mails)
        {
            Assert.Contains("apm@alerts.test", mail.Header("From"), StringComparison.Ordinal);
            Assert.Contains("oncall@ops.test", mail.Header("To"), StringComparison.Ordinal);
            Assert.Contains("dba@ops.test", mail.Header("To"), StringComparison.Ordinal);
            Assert.StartsWith("multipart/alternative", mail.Header("Content-Type"), StringComparison.OrdinalIgnoreCase);
            var text = mail.Part("text/plain");
            var html = mail.Part("text/html");
            Assert.NotNull(text);
            Assert.NotNull(html);
            Assert.Matches(@"(?m)^  Queue length \(end\) +48000$", text);
            Assert.Contains("com.acme.db.PooledStatement", text, StringComparison.Ordinal);
            Assert.Contains("http://dashboard.test:3000/apm/jvm?id=web-1%2F4242", text, StringComparison.Ordinal);
            Assert.Contains("<tr><th align=\"left\">Queue length (end)</th><td>48000</td></tr>", html, StringComparison.Ordinal);
            Assert.Contains("<code>com.acme.db.PooledStatement</code>", html, StringComparison.Ordinal);
            Assert.Contains("<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>", html, StringComparison.Ordinal);
            Assert.DoesNotContain(MailTestData.HostileClass, html, StringComparison.Ordinal);
        }

        Assert.Contains("Resolved: 2026-11-21 23:30:00 UTC", mails[1].Part("text/plain"), StringComparison.Ordinal);
        Assert.DoesNotContain("Resolved:", mails[0].Part("text/plain"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_down_keeps_the_message_and_it_is_delivered_exactly_once_after_the_server_returns()
    {
        using var smtp = await SmtpServer.StartNewAsync();
        smtp.Stop();
        using var outbox = new MailOutbox(_dir, MailTestData.Options(smtp.Port), timeProvider: _clock);
        var path = outbox.Enqueue(MailTestData.Notification());

        Assert.Equal(0, await outbox.DeliverPendingAsync());
        Assert.True(File.Exists(path));
        Assert.Equal(1, outbox.FailedAttempts);
        Assert.Equal(1, outbox.Pending);
        var entry = MailOutbox.TryRead(path);
        Assert.NotNull(entry);
        Assert.Equal(1, entry.Attempts);
        Assert.Equal(_clock.Now + TimeSpan.FromSeconds(30), entry.NextAttemptAt);
        Assert.False(string.IsNullOrEmpty(entry.LastError));

        // Not due yet: no attempt, no new failure.
        Assert.Equal(0, await outbox.DeliverPendingAsync());
        Assert.Equal(1, outbox.FailedAttempts);

        // Second failure doubles the delay.
        _clock.Now += TimeSpan.FromSeconds(30);
        Assert.Equal(0, await outbox.DeliverPendingAsync());
        Assert.Equal(2, outbox.FailedAttempts);
        Assert.Equal(_clock.Now + TimeSpan.FromSeconds(60), MailOutbox.TryRead(path)!.NextAttemptAt);

        await smtp.StartAsync();
        _clock.Now += TimeSpan.FromSeconds(60);
        Assert.Equal(1, await outbox.DeliverPendingAsync());
        await smtp.WaitForMessagesAsync(1);
        Assert.False(File.Exists(path));
        Assert.Equal(0, await outbox.DeliverPendingAsync());

        Assert.Single(smtp.Messages);
        Assert.Equal(1, outbox.Sent);
        Assert.Equal(2, outbox.FailedAttempts);
        Assert.Equal(0, outbox.Pending);
        Assert.StartsWith("[Apm] FIRING FinalizerBacklog", smtp.Messages[0].Subject, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Outbox_survives_a_restart_of_the_process_and_sends_what_an_earlier_instance_queued()
    {
        using var smtp = await SmtpServer.StartNewAsync();
        using (var before = new MailOutbox(_dir, MailTestData.Options(smtp.Port), timeProvider: _clock))
            before.Enqueue(MailTestData.Notification());

        using var after = new MailOutbox(_dir, MailTestData.Options(smtp.Port), timeProvider: _clock);
        Assert.Equal(1, after.Pending);
        Assert.Equal(1, await after.DeliverPendingAsync());
        Assert.Single(await smtp.WaitForMessagesAsync(1));
    }

    [Fact]
    public async Task Corrupt_outbox_files_are_moved_aside_and_counted_and_the_others_are_delivered()
    {
        using var smtp = await SmtpServer.StartNewAsync();
        using var outbox = new MailOutbox(_dir, MailTestData.Options(smtp.Port), timeProvider: _clock);
        outbox.Enqueue(MailTestData.Notification());
        await File.WriteAllTextAsync(Path.Combine(_dir, "0000000000000000001-garbage.json"), "{ this is not json");
        await File.WriteAllTextAsync(Path.Combine(_dir, "0000000000000000002-empty-object.json"), "{}");
        outbox.Enqueue(MailTestData.Notification(state: AlertNotification.Resolved));

        Assert.Equal(2, await outbox.DeliverPendingAsync());

        Assert.Equal(2, outbox.Corrupt);
        Assert.Equal(2, outbox.Sent);
        Assert.Equal(0, outbox.Pending);
        Assert.Equal(
            ["0000000000000000001-garbage.json", "0000000000000000002-empty-object.json"],
            Directory.GetFiles(outbox.BadDirectory).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        var mails = await smtp.WaitForMessagesAsync(2);
        Assert.Equal(["FIRING", "RESOLVED"], mails.Select(m => m.Subject.Split(' ')[1]));
    }

    [Fact]
    public async Task Subject_injection_with_CR_LF_adds_no_header_at_the_server()
    {
        using var smtp = await SmtpServer.StartNewAsync();
        using var outbox = new MailOutbox(_dir, MailTestData.Options(smtp.Port), timeProvider: _clock);
        outbox.Enqueue(MailTestData.Notification(displayName: "evil\r\nBcc: victim@x.test\r\nX-Injected: yes"));

        Assert.Equal(1, await outbox.DeliverPendingAsync());

        var mail = Assert.Single(await smtp.WaitForMessagesAsync(1));
        Assert.Null(mail.Header("X-Injected"));
        Assert.Null(mail.Header("Bcc"));
        Assert.Equal("[Apm] FIRING FinalizerBacklog on evil  Bcc: victim@x.test  X-Injected: yes", mail.Subject);
    }

    [Fact]
    public async Task Temp_files_left_by_a_crash_mid_write_are_removed_once_stale_and_never_sent()
    {
        using var outbox = new MailOutbox(_dir, MailTestData.Options(FreePort.Next()), timeProvider: _clock);
        var stale = Path.Combine(_dir, "0000000000000000001-x.json.abc.tmp");
        var young = Path.Combine(_dir, "0000000000000000002-y.json.def.tmp");
        await File.WriteAllTextAsync(stale, "{\"subj");
        await File.WriteAllTextAsync(young, "{\"subj");
        File.SetLastWriteTimeUtc(stale, _clock.Now.UtcDateTime - TimeSpan.FromHours(2));
        File.SetLastWriteTimeUtc(young, _clock.Now.UtcDateTime - TimeSpan.FromMinutes(5));

        Assert.Equal(0, await outbox.DeliverPendingAsync());

        Assert.False(File.Exists(stale));
        Assert.True(File.Exists(young));
        Assert.Equal(0, outbox.Pending);
        Assert.Equal(0, outbox.Corrupt);
        Assert.Equal(0, outbox.FailedAttempts);
    }
}

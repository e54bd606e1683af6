using System.Globalization;
using System.Net.Http;
using Apm.Alerts.Mail;
using Apm.Testing;

namespace Apm.EndToEnd.Tests;

/// <summary>The alert e-mail outbox's counters on a real `apm aggregator`'s Prometheus /metrics, against a real SMTP server.</summary>
public sealed class MailMetricsTests
{
    [Fact]
    public async Task The_outbox_counters_appear_on_metrics_and_move_as_a_mail_fails_a_file_is_quarantined_and_the_mail_is_sent()
    {
        await using var pipeline = await Pipeline.StartAsync();
        using var smtp = await SmtpServer.StartNewAsync();
        smtp.Stop(); // down at first: the mail waits in the outbox and its attempts fail
        var state = Directory.CreateTempSubdirectory("apm-mail-metrics-");
        try
        {
            var outbox = Path.Combine(state.FullName, "outbox");
            var options = new SmtpOptions { Host = SmtpServer.Host, Port = smtp.Port, From = "apm@example.test", To = ["oncall@example.test"] };
            // What an earlier instance left behind: one alert mail, and one file that is not an outbox entry.
            using (var earlier = new MailOutbox(outbox, options)) earlier.Enqueue(new AlertMailContent("[Apm] left over", "text\n", "<p>html</p>\n"), "left-over");
            await File.WriteAllTextAsync(Path.Combine(outbox, "0000000000000000000-garbage.json"), "{ not an outbox entry");

            var apiPort = FreePort.Next();
            using var aggregator = ChildProcess.StartAggregator(pipeline, apiPort, new Dictionary<string, string>
            {
                ["Apm__Smtp__Host"] = SmtpServer.Host,
                ["Apm__Smtp__Port"] = smtp.Port.ToString(CultureInfo.InvariantCulture),
                ["Apm__Smtp__From"] = "apm@example.test",
                ["Apm__Alerts__To"] = "oncall@example.test",
                ["Apm__Alerts__OutboxDirectory"] = outbox,
                ["Apm__Alerts__MailPollInterval"] = "00:00:01",
                ["Apm__Smtp__RetryBaseDelay"] = "00:00:01",
                ["Apm__Smtp__RetryMaxDelay"] = "00:00:02",
                ["Apm__DataDirectory"] = state.FullName,
            });
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{apiPort}") };

            Dictionary<string, long> m = [];
            Assert.True(await Pipeline.EventuallyAsync(async () =>
            {
                m = await ScrapeAsync(http);
                return m.GetValueOrDefault("apm_aggregator_mail_failed_attempts") >= 1 && m.GetValueOrDefault("apm_aggregator_mail_corrupt") == 1;
            }, TimeSpan.FromSeconds(60)), $"metrics: {string.Join(", ", m)}\naggregator:\n{aggregator.Output}");
            Assert.Equal(1, m["apm_aggregator_mail_pending"]);
            Assert.Equal(0, m["apm_aggregator_mail_sent"]);
            Assert.Equal(0, m["apm_aggregator_mail_login_failures"]);
            Assert.Equal(0, m["apm_aggregator_mail_round_failures"]);

            await smtp.StartAsync();
            Assert.True(await Pipeline.EventuallyAsync(async () =>
            {
                m = await ScrapeAsync(http);
                return m.GetValueOrDefault("apm_aggregator_mail_sent") == 1 && m.GetValueOrDefault("apm_aggregator_mail_pending") == 0;
            }, TimeSpan.FromSeconds(60)), $"metrics: {string.Join(", ", m)}\naggregator:\n{aggregator.Output}");
            Assert.Equal("[Apm] left over", Assert.Single(await smtp.WaitForMessagesAsync(1)).Subject);
            Assert.Equal(1, m["apm_aggregator_mail_corrupt"]);
        }
        finally
        {
            state.Delete(recursive: true);
        }
    }

    /// <summary>The Prometheus text as name → value; empty while the process is not listening yet.</summary>
    private static async Task<Dictionary<string, long>> ScrapeAsync(HttpClient http)
    {
        string text;
        try
        {
            text = await http.GetStringAsync("/metrics");
        }
        catch (HttpRequestException)
        {
            return [];
        }

        var values = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#') continue;
            var parts = line.Split(' ');
            if (parts.Length == 2 && long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)) values[parts[0]] = v;
        }

        return values;
    }
}

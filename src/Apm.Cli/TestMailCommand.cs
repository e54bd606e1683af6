using Apm.Alerts.Mail;
using Microsoft.Extensions.Configuration;

namespace Apm.Cli;

/// <summary>
/// <c>apm test-mail</c>: sends one test message with the configured alert e-mail settings (Apm__Smtp__*, Apm__Alerts__To),
/// through the same outbox and SMTP client as alerts, and says whether the server took it. Exit codes: 0 sent, 1 the
/// server refused or was unreachable (the reason is printed), 2 e-mail is not configured.
/// </summary>
internal static class TestMailCommand
{
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        var config = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json"), optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(args)
            .Build();
        SmtpOptions? smtp;
        try
        {
            smtp = AlertingSetup.ReadSmtp(config, null);
        }
        catch (InvalidOperationException ex)
        {
            await error.WriteLineAsync("apm: " + ex.Message).ConfigureAwait(false);
            return 2;
        }

        if (smtp is null)
        {
            await error.WriteLineAsync("apm: e-mail is not configured: set Apm__Smtp__Host, Apm__Smtp__From and Apm__Alerts__To.").ConfigureAwait(false);
            return 2;
        }

        var dir = Directory.CreateTempSubdirectory("apm-test-mail-");
        try
        {
            using var outbox = new MailOutbox(dir.FullName, smtp);
            var path = outbox.Enqueue(new AlertMailContent(
                "[Apm] Test message",
                $"This is a test message from Apm at {Environment.MachineName}: alert e-mail reaches you.\n",
                "<!DOCTYPE html><html><body><p>This is a test message from Apm: alert e-mail reaches you.</p></body></html>\n"), "test-mail");
            var sent = await outbox.DeliverPendingAsync().ConfigureAwait(false);
            if (sent == 1)
            {
                await output.WriteLineAsync($"sent a test message to {string.Join(", ", smtp.To)} through {smtp.Host}:{smtp.Port}{(smtp.EnableSsl ? " (STARTTLS)" : "")}").ConfigureAwait(false);
                return 0;
            }

            var entry = MailOutbox.TryRead(path);
            await error.WriteLineAsync($"apm: {smtp.Host}:{smtp.Port} did not take the message: {entry?.LastError ?? "unknown reason"}").ConfigureAwait(false);
            return 1;
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}

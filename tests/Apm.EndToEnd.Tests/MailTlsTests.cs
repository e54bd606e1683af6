using System.Diagnostics;
using System.Globalization;
using Apm.Testing;

namespace Apm.EndToEnd.Tests;

/// <summary>Alert e-mail over STARTTLS against a real SMTP server that requires it (aiosmtpd with a certificate).</summary>
public sealed class MailTlsTests
{
    [Fact]
    public async Task Test_mail_goes_through_STARTTLS_when_enabled_and_is_refused_with_the_reason_when_the_server_requires_TLS_and_it_is_off()
    {
        var dir = Directory.CreateTempSubdirectory("apm-tls-");
        try
        {
            // A certificate for 127.0.0.1 that the child process trusts through SSL_CERT_FILE (OpenSSL's trust override).
            var cert = Path.Combine(dir.FullName, "cert.pem");
            var key = Path.Combine(dir.FullName, "key.pem");
            var openssl = Run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], null);
            Assert.True(openssl.Code == 0, openssl.Output);
            using var smtp = await SmtpServer.StartNewAsync(cert, key);

            var env = new Dictionary<string, string>
            {
                ["Apm__Smtp__Host"] = SmtpServer.Host,
                ["Apm__Smtp__Port"] = smtp.Port.ToString(CultureInfo.InvariantCulture),
                ["Apm__Smtp__From"] = "apm@example.test",
                ["Apm__Alerts__To"] = "oncall@example.test",
                ["SSL_CERT_FILE"] = cert,
            };

            // Without STARTTLS the server (which requires it) refuses: exit 1 with the server's reason.
            var plain = Run("dotnet", [Path.Combine(AppContext.BaseDirectory, "apm.dll"), "test-mail"], env);
            Assert.True(plain.Code == 1, plain.Output);
            Assert.Contains("did not take the message", plain.Output, StringComparison.Ordinal);
            Assert.Empty(smtp.Messages);

            env["Apm__Smtp__EnableSsl"] = "true";
            var tls = Run("dotnet", [Path.Combine(AppContext.BaseDirectory, "apm.dll"), "test-mail"], env);
            Assert.True(tls.Code == 0, tls.Output);
            Assert.Contains("(STARTTLS)", tls.Output, StringComparison.Ordinal);
            var mail = Assert.Single(await smtp.WaitForMessagesAsync(1));
            Assert.Equal("[Apm] Test message", mail.Subject);

            // Not configured: exit 2 with what to set.
            var none = Run("dotnet", [Path.Combine(AppContext.BaseDirectory, "apm.dll"), "test-mail"], new Dictionary<string, string>());
            Assert.True(none.Code == 2, none.Output);
            Assert.Contains("Apm__Smtp__Host", none.Output, StringComparison.Ordinal);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    private static (int Code, string Output) Run(string exe, string[] args, IDictionary<string, string>? env)
    {
        var psi = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // A clean environment for the Apm keys: nothing of this process's own settings leaks into the child.
        foreach (var k in psi.Environment.Keys.Where(k => k.StartsWith("Apm__", StringComparison.Ordinal)).ToList()) psi.Environment.Remove(k);
        if (env is not null)
        {
            foreach (var (k, v) in env) psi.Environment[k] = v;
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            p.Kill(true);
            return (-1, "timed out");
        }

        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}

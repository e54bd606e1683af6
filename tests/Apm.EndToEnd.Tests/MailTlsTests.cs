using System.Diagnostics;
using System.Globalization;
using Apm.Testing;

namespace Apm.EndToEnd.Tests;

/// <summary>
/// <c>apm test-mail</c> against real SMTP servers: one that requires STARTTLS (aiosmtpd with a certificate), one that
/// requires login, configured through the environment or an <c>appsettings.json</c> settings file.
/// </summary>
public sealed class MailTlsTests
{
    [Fact]
    public async Task Test_mail_goes_through_STARTTLS_when_enabled_and_is_refused_with_the_reason_when_the_server_requires_TLS_and_it_is_off()
    {
        var dir = Directory.CreateTempSubdirectory("apm-tls-");
        try
        {
            var (cert, key) = Certificate(dir.FullName);
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

    [Fact]
    public async Task Login_after_STARTTLS_delivers_and_a_plain_connection_is_refused_before_any_password_is_sent()
    {
        const string user = "apm-tls-user";
        const string password = "tls-Pa55word";
        var dir = Directory.CreateTempSubdirectory("apm-tls-login-");
        try
        {
            var (cert, key) = Certificate(dir.FullName);
            using var smtp = await SmtpServer.StartWithLoginAsync(user, password, cert, key);
            var env = new Dictionary<string, string>
            {
                ["Apm__Smtp__Host"] = SmtpServer.Host,
                ["Apm__Smtp__Port"] = smtp.Port.ToString(CultureInfo.InvariantCulture),
                ["Apm__Smtp__From"] = "apm@example.test",
                ["Apm__Alerts__To"] = "oncall@example.test",
                ["Apm__Smtp__Username"] = user,
                ["Apm__Smtp__Password"] = password,
                ["SSL_CERT_FILE"] = cert,
            };

            // Without STARTTLS the server offers no login and wants TLS first: refused with that reason (not a bad
            // password), and no login was tried.
            var plain = Run("dotnet", [Path.Combine(AppContext.BaseDirectory, "apm.dll"), "test-mail"], env);
            Assert.True(plain.Code == 1, plain.Output);
            Assert.Contains("requires STARTTLS first: set Apm__Smtp__EnableSsl=true", plain.Output, StringComparison.Ordinal);
            Assert.DoesNotContain("was refused", plain.Output, StringComparison.Ordinal);
            Assert.DoesNotContain("AUTH ", smtp.Log(), StringComparison.Ordinal);
            Assert.DoesNotContain(password, plain.Output, StringComparison.Ordinal);

            env["Apm__Smtp__EnableSsl"] = "true";
            var tls = Run("dotnet", [Path.Combine(AppContext.BaseDirectory, "apm.dll"), "test-mail"], env);
            Assert.True(tls.Code == 0, tls.Output + smtp.Log());
            Assert.Contains("(STARTTLS)", tls.Output, StringComparison.Ordinal);
            Assert.True(await smtp.WaitForLogAsync($"AUTH LOGIN ok {user}"), smtp.Log());
            Assert.Equal("[Apm] Test message", Assert.Single(await smtp.WaitForMessagesAsync(1)).Subject);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public async Task The_settings_files_Smtp_and_Alerts_values_are_used_with_login_and_the_environment_wins_over_the_file()
    {
        const string user = "apm-file-user";
        const string password = "file-Pa55word";
        var dir = Directory.CreateTempSubdirectory("apm-settings-");
        try
        {
            using var smtp = await SmtpServer.StartWithLoginAsync(user, password);
            var settings = $$"""
                { "Apm": {
                    "Smtp": { "Host": "{{SmtpServer.Host}}", "Port": {{smtp.Port}}, "From": "file-sender@example.test",
                              "Username": "{{user}}", "Password": "{{password}}" },
                    "Alerts": { "To": "file-oncall@example.test; file-dba@example.test" } } }
                """;
            await File.WriteAllTextAsync(Path.Combine(dir.FullName, "appsettings.json"), settings);

            // Only the file configures e-mail (the child's Apm__ variables are cleared): it logs in and sends.
            var sent = Run("dotnet", [Path.Combine(AppContext.BaseDirectory, "apm.dll"), "test-mail"], new Dictionary<string, string>(), dir.FullName);
            Assert.True(sent.Code == 0, sent.Output + smtp.Log());
            Assert.Contains("file-oncall@example.test, file-dba@example.test", sent.Output, StringComparison.Ordinal);
            var mail = Assert.Single(await smtp.WaitForMessagesAsync(1));
            Assert.Contains("file-sender@example.test", mail.Header("From"), StringComparison.Ordinal);
            Assert.Contains("file-oncall@example.test", mail.Header("To"), StringComparison.Ordinal);
            Assert.Contains("file-dba@example.test", mail.Header("To"), StringComparison.Ordinal);
            Assert.True(await smtp.WaitForLogAsync($"AUTH LOGIN ok {user}"), smtp.Log());

            // An environment variable wins over the file: a wrong password is refused with the reason, and never printed.
            const string wrong = "env-Wr0ng-pass";
            var refused = Run("dotnet", [Path.Combine(AppContext.BaseDirectory, "apm.dll"), "test-mail"],
                new Dictionary<string, string> { ["Apm__Smtp__Password"] = wrong }, dir.FullName);
            Assert.True(refused.Code == 1, refused.Output);
            Assert.Contains($"login as '{user}' was refused", refused.Output, StringComparison.Ordinal);
            Assert.DoesNotContain(wrong, refused.Output, StringComparison.Ordinal);
            Assert.DoesNotContain(password, refused.Output, StringComparison.Ordinal);
            Assert.Single(smtp.Messages);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    /// <summary>A certificate for 127.0.0.1 that a child process trusts through SSL_CERT_FILE (OpenSSL's trust override).</summary>
    private static (string Cert, string Key) Certificate(string dir)
    {
        var cert = Path.Combine(dir, "cert.pem");
        var key = Path.Combine(dir, "key.pem");
        var openssl = Run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], null);
        Assert.True(openssl.Code == 0, openssl.Output);
        return (cert, key);
    }

    private static (int Code, string Output) Run(string exe, string[] args, IDictionary<string, string>? env, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
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

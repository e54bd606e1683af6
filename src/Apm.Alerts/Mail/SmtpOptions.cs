using System.Net.Mail;

namespace Apm.Alerts.Mail;

/// <summary>
/// SMTP settings for alert e-mail, bound from <c>Apm__Smtp__*</c> (recipients from <c>Apm__Alerts__To</c>, see
/// <see cref="ParseRecipients"/>) or a settings file.
/// </summary>
public sealed class SmtpOptions
{
    /// <summary>Mail server host name or address.</summary>
    public string Host { get; init; } = "";

    /// <summary>Mail server port; 25 by default. Port 465 (implicit TLS) is not supported by System.Net.Mail.</summary>
    public int Port { get; init; } = 25;

    /// <summary>Sender address.</summary>
    public string From { get; init; } = "";

    /// <summary>Recipient addresses.</summary>
    public IReadOnlyList<string> To { get; init; } = [];

    /// <summary>Upgrades the connection with STARTTLS before sending (and before login).</summary>
    public bool EnableSsl { get; init; }

    /// <summary>Login user; no login when empty.</summary>
    public string? Username { get; init; }

    /// <summary>Login password; never logged, never written to the outbox.</summary>
    public string? Password { get; init; }

    /// <summary>Time allowed for one SMTP send.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Dashboard root for links in the mails (<c>(<c>&lt;base&gt;/jvms/&lt;id&gt;</c>)lt;base(<c>&lt;base&gt;/jvms/&lt;id&gt;</c>)gt;/jvm?id=(<c>&lt;base&gt;/jvms/&lt;id&gt;</c>)lt;id(<c>&lt;base&gt;/jvms/&lt;id&gt;</c>)gt;</c>); no link when null.</summary>
    public Uri? DashboardBaseUrl { get; init; }

    /// <summary>First retry delay after a failed send; doubled per failure up to <see cref="RetryMaxDelay"/>.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest delay between two attempts for one message.</summary>
    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Splits a comma- or semicolon-separated recipient list (the form of <c>Apm__Alerts__To</c>).</summary>
    public static IReadOnlyList<string> ParseRecipients(string? value) =>
        string.IsNullOrWhiteSpace(value)
            ? []
            : value.Split([',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Throws <see cref="InvalidOperationException"/> naming the first bad setting.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Host)) throw new InvalidOperationException("Apm:Smtp:Host is required for alert e-mail.");
        if (Port is < 1 or > 65535) throw new InvalidOperationException($"Apm:Smtp:Port {Port} is not a TCP port (1-65535).");
        CheckAddress(From, "Apm:Smtp:From");
        if (To.Count == 0) throw new InvalidOperationException("Apm:Alerts:To needs at least one recipient address.");
        foreach (var to in To) CheckAddress(to, "Apm:Alerts:To");
        if (Timeout <= TimeSpan.Zero) throw new InvalidOperationException($"Apm:Smtp:Timeout must be positive, not {Timeout}.");
        if (RetryBaseDelay < TimeSpan.Zero || RetryMaxDelay < RetryBaseDelay)
            throw new InvalidOperationException("Retry delays must satisfy 0 <= RetryBaseDelay <= RetryMaxDelay.");
        if (DashboardBaseUrl is { IsAbsoluteUri: false })
            throw new InvalidOperationException($"Dashboard base URL '{DashboardBaseUrl}' must be absolute.");
    }

    private static void CheckAddress(string address, string setting)
    {
        if (!MailAddress.TryCreate(address, out _))
            throw new InvalidOperationException($"{setting} '{address}' is not an e-mail address.");
    }
}

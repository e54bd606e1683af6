using System.Globalization;
using System.Net;
using System.Net.Mail;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apm.Alerts.Mail;

/// <summary>
/// A persisted outbox for alert e-mail: <see cref="Enqueue(AlertNotification)"/> writes one JSON file per message
/// (temp file + rename, so a crash never leaves half a file) before anything is sent, and
/// <see cref="DeliverPendingAsync"/> sends due messages through SMTP, deleting each file only after the server accepted it.
/// A mail server that is down therefore delays alerts but never loses them; delivery is at least once (a crash between
/// the server's acceptance and the delete sends that message again).
/// </summary>
/// <remarks>
/// Failed messages stay with an attempt count and a next attempt time (exponential backoff per message).
/// Files that cannot be read as an outbox entry are moved to <c>bad/</c> and counted, never retried.
/// One instance per directory; <see cref="DeliverPendingAsync"/> calls on one instance run one at a time.
/// </remarks>
public sealed partial class MailOutbox : IDisposable
{
    /// <summary>Files larger than this are not outbox entries (a rendered alert mail is a few KB).</summary>
    public const long MaxEntryBytes = 4 * 1024 * 1024;

    private const string EntryExtension = ".json";
    private static readonly TimeSpan StaleTempAge = TimeSpan.FromHours(1);
    private readonly SmtpOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _deliverLock = new(1, 1);
    private readonly Lock _nameLock = new();
    private long _lastTicks;
    private long _sent;
    private long _failedAttempts;
    private long _corrupt;
    private long _loginFailures;

    /// <summary>Creates the outbox over <paramref name="directory"/> (created if missing); validates <paramref name="options"/>.</summary>
    public MailOutbox(string directory, SmtpOptions options, ILogger<MailOutbox>? logger = null, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
        Directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Directory);
    }

    /// <summary>The outbox directory; pending messages are its <c>*.json</c> files.</summary>
    public string Directory { get; }

    /// <summary>Where unreadable entries are moved.</summary>
    public string BadDirectory => Path.Combine(Directory, "bad");

    /// <summary>Messages accepted by the SMTP server since this instance was created.</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Send attempts that failed since this instance was created (one message can fail many times).</summary>
    public long FailedAttempts => Interlocked.Read(ref _failedAttempts);

    /// <summary>Failed sends (also in <see cref="FailedAttempts"/>) because the server refused the login or required one.</summary>
    public long LoginFailures => Interlocked.Read(ref _loginFailures);

    /// <summary>Entries moved to <see cref="BadDirectory"/> since this instance was created.</summary>
    public long Corrupt => Interlocked.Read(ref _corrupt);

    /// <summary>Messages waiting in the directory now (lists the directory: cost grows with the backlog).</summary>
    public int Pending => EntryFiles().Count;

    /// <summary>Renders and persists the mail for <paramref name="notification"/>; returns the path of its outbox file.</summary>
    public string Enqueue(AlertNotification notification) =>
        Enqueue(AlertMail.Render(notification, _options.DashboardBaseUrl), notification.AlertId);

    /// <summary>Renders and persists the "report ready" mail; returns the path of its outbox file.</summary>
    public string Enqueue(ReportNotification notification)
    {
        ArgumentNullException.ThrowIfNull(notification);
        return Enqueue(ReportMail.Render(notification, _options.DashboardBaseUrl), notification.AlertId);
    }

    /// <summary>Persists already rendered content; returns the path of its outbox file. Throws when the disk write fails.</summary>
    public string Enqueue(AlertMailContent content, string alertId)
    {
        ArgumentNullException.ThrowIfNull(content);
        ArgumentNullException.ThrowIfNull(alertId);
        var now = _time.GetUtcNow();
        long ticks;
        lock (_nameLock)
        {
            // Strictly increasing within this instance, so two alerts queued in the same tick keep their order.
            ticks = _lastTicks = Math.Max(now.UtcTicks, _lastTicks + 1);
        }

        var entry = new OutboxEntry
        {
            AlertId = alertId,
            CreatedAt = now,
            NextAttemptAt = now,
            Subject = content.Subject,
            Text = content.Text,
            Html = content.Html,
        };
        // Creation ticks first so that a directory listing sorted by name is the order of the alerts.
        var name = ticks.ToString("D19", CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N") + EntryExtension;
        var path = Path.Combine(Directory, name);
        WriteAtomically(path, entry);
        LogEnqueued(_logger, alertId, name);
        return path;
    }

    /// <summary>
    /// Sends every entry whose next attempt time has come, oldest first; returns how many the server accepted.
    /// Failures are recorded in the entry (attempts, next attempt, last error) and counted, never thrown.
    /// </summary>
    public async Task<int> DeliverPendingAsync(CancellationToken cancellationToken = default)
    {
        await _deliverLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            RemoveStaleTempFiles();
            var files = EntryFiles();
            if (files.Count == 0) return 0;
            using var client = CreateClient();
            var sent = 0;
            foreach (var path in files)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var entry = ReadEntry(path);
                if (entry is null || entry.NextAttemptAt > _time.GetUtcNow()) continue;
                if (await TrySendAsync(client, path, entry, cancellationToken).ConfigureAwait(false)) sent++;
            }

            return sent;
        }
        finally
        {
            _deliverLock.Release();
        }
    }

    /// <summary>Delay before attempt number <paramref name="failedAttempts"/> + 1: base × 2^(failures-1), capped.</summary>
    public TimeSpan BackoffAfter(int failedAttempts)
    {
        if (failedAttempts <= 0) return TimeSpan.Zero;
        var factor = Math.Pow(2, Math.Min(failedAttempts - 1, 30));
        var ticks = Math.Min(_options.RetryBaseDelay.Ticks * factor, _options.RetryMaxDelay.Ticks);
        return TimeSpan.FromTicks((long)ticks);
    }

    /// <summary>Reads one outbox file; for tests and diagnostics. Returns null (without moving it) when unreadable.</summary>
    public static OutboxEntry? TryRead(string path)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists || info.Length > MaxEntryBytes) return null;
            var entry = JsonSerializer.Deserialize(File.ReadAllBytes(path), MailOutboxJsonContext.Default.OutboxEntry);
            return entry is { Subject: not null, Text: not null, Html: not null, AlertId: not null } ? entry : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public void Dispose() => _deliverLock.Dispose();

    private List<string> EntryFiles()
    {
        var files = System.IO.Directory.EnumerateFiles(Directory)
            .Where(f => string.Equals(Path.GetExtension(f), EntryExtension, StringComparison.Ordinal))
            .ToList();
        files.Sort(StringComparer.Ordinal);
        return files;
    }

    /// <summary>Deletes temp files a crash left behind mid-write; young ones may belong to a write in progress.</summary>
    private void RemoveStaleTempFiles()
    {
        var cutoff = _time.GetUtcNow().UtcDateTime - StaleTempAge;
        foreach (var temp in System.IO.Directory.EnumerateFiles(Directory, "*.tmp"))
        {
            try
            {
                if (File.GetLastWriteTimeUtc(temp) < cutoff) File.Delete(temp);
            }
            catch (IOException ex)
            {
                LogRewriteFailed(_logger, temp, ex.Message);
            }
        }
    }

    private SmtpClient CreateClient()
    {
        var client = new SmtpClient(_options.Host, _options.Port)
        {
            // EnableSsl on a plain port means STARTTLS in System.Net.Mail.
            EnableSsl = _options.EnableSsl,
            Timeout = (int)Math.Min(_options.Timeout.TotalMilliseconds, int.MaxValue),
            DeliveryMethod = SmtpDeliveryMethod.Network,
        };
        if (!string.IsNullOrEmpty(_options.Username))
            client.Credentials = new NetworkCredential(_options.Username, _options.Password);
        return client;
    }

    private async Task<bool> TrySendAsync(SmtpClient client, string path, OutboxEntry entry, CancellationToken cancellationToken)
    {
        string error;
        try
        {
            using var message = AlertMail.ToMessage(new AlertMailContent(entry.Subject!, entry.Text!, entry.Html!), _options);
            await client.SendMailAsync(message, cancellationToken).ConfigureAwait(false);
            Interlocked.Increment(ref _sent);
            LogSent(_logger, entry.AlertId!, entry.Attempts + 1);
            TryDelete(path);
            return true;
        }
        catch (SmtpException ex)
        {
            error = ex.StatusCode + ": " + ex.Message + (ex.InnerException is null ? "" : " (" + ex.InnerException.Message + ")");
            var response = ServerResponse(ex.Message);
            if ((int)ex.StatusCode == 530 && !_options.EnableSsl && response.Contains("STARTTLS", StringComparison.OrdinalIgnoreCase))
            {
                error = "The SMTP server requires STARTTLS first: set Apm__Smtp__EnableSsl=true. " + error;
            }
            else if (LoginProblem(ex, response) is { } login)
            {
                Interlocked.Increment(ref _loginFailures);
                error = login + " " + error;
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or AuthenticationException)
        {
            error = ex.GetType().Name + ": " + ex.Message;
        }

        Interlocked.Increment(ref _failedAttempts);
        entry.Attempts++;
        entry.LastError = error.Length > 1000 ? error[..1000] : error;
        entry.NextAttemptAt = _time.GetUtcNow() + BackoffAfter(entry.Attempts);
        LogFailed(_logger, entry.AlertId!, entry.Attempts, entry.NextAttemptAt, error);
        try
        {
            WriteAtomically(path, entry);
        }
        catch (IOException ex)
        {
            // The old file is still there, so the message is only retried sooner than planned.
            LogRewriteFailed(_logger, path, ex.Message);
        }

        return false;
    }

    /// <summary>
    /// What to tell the operator when the server refused the login (535, 534, 538) or wants one (530 "authentication
    /// required"); null for other failures. Names the user, never the password.
    /// </summary>
    private string? LoginProblem(SmtpException ex, string response)
    {
        var code = (int)ex.StatusCode;
        var authCode = code is 535 or 534 or 538 || (code == 530 && response.Contains("auth", StringComparison.OrdinalIgnoreCase));
        if (!authCode) return null;
        return string.IsNullOrEmpty(_options.Username)
            ? "The SMTP server requires a login: set Apm__Smtp__Username and Apm__Smtp__Password."
            : $"The SMTP server's login as '{_options.Username}' was refused: check Apm__Smtp__Username and Apm__Smtp__Password.";
    }

    /// <summary>The server's own words in a System.Net.Mail message ("... The server response was: 5.7.0 ..."), or empty.</summary>
    private static string ServerResponse(string message)
    {
        const string marker = "The server response was:";
        var at = message.IndexOf(marker, StringComparison.Ordinal);
        return at < 0 ? string.Empty : message[(at + marker.Length)..];
    }

    private OutboxEntry? ReadEntry(string path)
    {
        OutboxEntry? entry;
        try
        {
            entry = TryRead(path);
        }
        catch (IOException ex)
        {
            // Vanished or locked: look again next round rather than declaring it corrupt.
            LogUnreadable(_logger, path, ex.Message);
            return null;
        }

        if (entry is null && File.Exists(path)) MoveAside(path);
        return entry;
    }

    private void MoveAside(string path)
    {
        try
        {
            System.IO.Directory.CreateDirectory(BadDirectory);
            var target = Path.Combine(BadDirectory, Path.GetFileName(path));
            if (File.Exists(target)) target += "." + Guid.NewGuid().ToString("N");
            File.Move(path, target);
            Interlocked.Increment(ref _corrupt);
            LogCorrupt(_logger, path, target);
        }
        catch (IOException ex)
        {
            LogUnreadable(_logger, path, ex.Message);
        }
    }

    private void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException ex)
        {
            // Sent but still on disk: it will be sent again (at least once, not exactly once).
            LogRewriteFailed(_logger, path, ex.Message);
        }
    }

    private static void WriteAtomically(string path, OutboxEntry entry)
    {
        var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                JsonSerializer.Serialize(stream, entry, MailOutboxJsonContext.Default.OutboxEntry);
                // On disk before the rename makes it visible, so a power loss leaves the old or the new file, not an empty one.
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            if (File.Exists(temp)) File.Delete(temp);
            throw;
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "Alert mail for {AlertId} queued as {File}")]
    private static partial void LogEnqueued(ILogger logger, string alertId, string file);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Alert mail for {AlertId} sent (attempt {Attempt})")]
    private static partial void LogSent(ILogger logger, string alertId, int attempt);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Alert mail for {AlertId} failed (attempt {Attempt}), next attempt at {NextAttemptAt}: {Error}")]
    private static partial void LogFailed(ILogger logger, string alertId, int attempt, DateTimeOffset nextAttemptAt, string error);

    [LoggerMessage(EventId = 4, Level = LogLevel.Error, Message = "Outbox file {File} is not an outbox entry; moved to {Target}")]
    private static partial void LogCorrupt(ILogger logger, string file, string target);

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "Outbox file {File} could not be read or moved: {Error}")]
    private static partial void LogUnreadable(ILogger logger, string file, string error);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "Outbox file {File} could not be updated: {Error}")]
    private static partial void LogRewriteFailed(ILogger logger, string file, string error);
}

/// <summary>One persisted outbox file. Holds the rendered mail, not addresses or credentials (those come from current options).</summary>
public sealed class OutboxEntry
{
    /// <summary>Alert the mail is about.</summary>
    public string? AlertId { get; set; }

    /// <summary>When the mail was queued.</summary>
    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>Failed send attempts so far.</summary>
    public int Attempts { get; set; }

    /// <summary>Earliest time of the next attempt.</summary>
    public DateTimeOffset NextAttemptAt { get; set; }

    /// <summary>Why the last attempt failed.</summary>
    public string? LastError { get; set; }

    /// <summary>Mail subject.</summary>
    public string? Subject { get; set; }

    /// <summary>Plain-text body.</summary>
    public string? Text { get; set; }

    /// <summary>HTML body.</summary>
    public string? Html { get; set; }
}

/// <summary>Source-generated JSON for outbox files (no reflection, trimming-safe).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(OutboxEntry))]
internal sealed partial class MailOutboxJsonContext : JsonSerializerContext;

<?xml version="1.0" encoding="utf-8"?>
<!--
  What a browser shows for an Atom or RSS feed of this service: the feed's title and
  description, a note that this is an address for a feed reader, and the entries with
  their dates and links. Feed readers ignore it (they never apply the stylesheet).

  XSLT 1.0, the version browsers run. The site's style.css is put in place of the
  marker in <style> when the service loads this file (feeds/assets.py): the result
  document takes the feed's URL, so a relative link to the stylesheet would resolve
  against /tag/..., and one file to fetch is faster anyway.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:content="http://purl.org/rss/1.0/modules/content/"
    exclude-result-prefixes="atom content">
  <xsl:output method="html" encoding="utf-8" indent="no"
              doctype-system="about:legacy-compat"/>

  <xsl:variable name="atom" select="/atom:feed"/>
  <xsl:variable name="channel" select="/rss/channel"/>
  <xsl:variable name="lang" select="translate(string(($atom/@xml:lang | $channel/language)[1]),
                                    'ABCDEFGHIJKLMNOPQRSTUVWXYZ_', 'abcdefghijklmnopqrstuvwxyz-')"/>
  <!-- 'hans', 'hant' or 'en': the words around the feed, as the HTML pages choose them. -->
  <xsl:variable name="words">
    <xsl:choose>
      <xsl:when test="not(starts-with($lang, 'zh'))">en</xsl:when>
      <xsl:when test="contains($lang, '-hant') or contains($lang, '-tw')
                      or contains($lang, '-hk') or contains($lang, '-mo')">hant</xsl:when>
      <xsl:otherwise>hans</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="title" select="string(($atom/atom:title | $channel/title)[1])"/>
  <xsl:variable name="description"
                select="string(($atom/atom:subtitle | $channel/description)[1])"/>
  <xsl:variable name="page" select="string(($atom/atom:link[@rel='alternate']/@href
                                           | $channel/link)[1])"/>
  <!-- The address to subscribe to: the feed's first page, also when this is page 2. -->
  <xsl:variable name="links" select="$atom/atom:link | $channel/atom:link"/>
  <xsl:variable name="feed-url">
    <xsl:choose>
      <xsl:when test="$links[@rel='first']">
        <xsl:value-of select="$links[@rel='first']/@href"/>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$links[@rel='self']/@href"/></xsl:otherwise>
    </xsl:choose>
  </xsl:variable>

  <xsl:template match="/">
    <html lang="{($atom/@xml:lang | $channel/language)[1]}">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <meta name="color-scheme" content="light dark"/>
        <title><xsl:value-of select="$title"/></title>
        <style>/* style.css */</style>
      </head>
      <body>
        <header class="site hero">
          <h1><a class="brand" href="{$page}"><xsl:value-of select="$title"/></a></h1>
          <xsl:if test="$description != '' and $description != $title">
            <p class="tagline"><xsl:value-of select="$description"/></p>
          </xsl:if>
        </header>
        <main>
          <section class="feed-note" aria-labelledby="feed-note">
            <p id="feed-note">
              <strong>
                <xsl:choose>
                  <xsl:when test="$words = 'hans'">这是一个订阅源（feed）。</xsl:when>
                  <xsl:when test="$words = 'hant'">這是一個訂閱源（feed）。</xsl:when>
                  <xsl:otherwise>This is a feed.</xsl:otherwise>
                </xsl:choose>
              </strong>
              <xsl:if test="$words = 'en'"><xsl:text> </xsl:text></xsl:if>
              <xsl:choose>
                <xsl:when test="$words = 'hans'">复制它的地址，粘贴到你的阅读器里，就能订阅新文章：</xsl:when>
                <xsl:when test="$words = 'hant'">複製它的網址，貼到你的閱讀器裡，就能訂閱新文章：</xsl:when>
                <xsl:otherwise>Copy its address into your feed reader to follow new posts:</xsl:otherwise>
              </xsl:choose>
            </p>
            <p><code class="feed-url"><xsl:value-of select="$feed-url"/></code></p>
          </section>
          <section class="latest" aria-labelledby="latest">
            <h2 id="latest">
              <xsl:choose>
                <xsl:when test="$words = 'en'">Latest posts</xsl:when>
                <xsl:otherwise>最新文章</xsl:otherwise>
              </xsl:choose>
            </h2>
            <ol class="posts">
              <xsl:apply-templates select="$atom/atom:entry | $channel/item"/>
            </ol>
          </section>
        </main>
        <footer class="site">
          <p><a href="{$page}"><xsl:value-of select="$title"/></a></p>
        </footer>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="atom:entry">
    <xsl:call-template name="entry">
      <xsl:with-param name="link" select="(atom:link[@rel='alternate'] | atom:link[not(@rel)])[1]/@href"/>
      <xsl:with-param name="day" select="substring((atom:published | atom:updated)[1], 1, 10)"/>
      <xsl:with-param name="when" select="(atom:published | atom:updated)[1]"/>
      <xsl:with-param name="summary" select="atom:summary"/>
    </xsl:call-template>
  </xsl:template>

  <xsl:template match="item">
    <!-- pubDate is RFC 822, 'Tue, 28 Dec 2021 00:07:58 +0800': shown as 2021-12-28. -->
    <xsl:variable name="date" select="normalize-space(substring-after(pubDate, ','))"/>
    <xsl:variable name="month" select="substring(substring-after($date, ' '), 1, 3)"/>
    <xsl:variable name="number"
        select="string-length(substring-before('JanFebMarAprMayJunJulAugSepOctNovDec', $month)) div 3 + 1"/>
    <xsl:variable name="day">
      <xsl:if test="$date != '' and string-length($month) = 3">
        <xsl:value-of select="concat(substring(substring-after(substring-after($date, ' '), ' '), 1, 4),
                                     '-', format-number($number, '00'), '-',
                                     format-number(substring-before($date, ' '), '00'))"/>
      </xsl:if>
    </xsl:variable>
    <xsl:call-template name="entry">
      <xsl:with-param name="link" select="link"/>
      <xsl:with-param name="day" select="$day"/>
      <xsl:with-param name="when" select="$day"/>
      <!-- description is the summary, or the whole body when there is none. -->
      <xsl:with-param name="summary" select="description[not(. = ../content:encoded)]"/>
    </xsl:call-template>
  </xsl:template>

  <xsl:template name="entry">
    <xsl:param name="link"/>
    <xsl:param name="day"/>
    <xsl:param name="when"/>
    <xsl:param name="summary"/>
    <li>
      <a class="title" href="{$link}"><xsl:value-of select="atom:title | title"/></a>
      <div class="meta">
        <time datetime="{$when}"><xsl:value-of select="$day"/></time>
        <xsl:for-each select="atom:category/@term | category">
          <span class="chip tag"><xsl:value-of select="."/></span>
        </xsl:for-each>
      </div>
      <xsl:if test="normalize-space($summary) != ''">
        <p class="summary"><xsl:value-of select="$summary"/></p>
      </xsl:if>
    </li>
  </xsl:template>
</xsl:stylesheet>

"""Bodies quoted from Salesforce's REST API Developer Guide and OAuth documentation, each with
the page it comes from. Ids, names and versions are the documents' own; only the JSON layout
was normalised. The conformance tests feed them to syncd's connector and hold the sandbox's
answers to their shapes.
"""

from __future__ import annotations

from typing import Any

REST = "https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest"

# -- OAuth token endpoint ---------------------------------------------------------------------
# https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm (response)
TOKEN_RESPONSE: dict[str, Any] = {
    "access_token": (
        "00Dxx0000001gPL!AR8AQJXg5oj8jXSgxJfA0lBog.39AsX.LVpxezPwuX5VAIrrbbHMuol7GQxnMeYMN7cj8Eo"
        "Wr78nt1u44zU31IbYNNJguseu"
    ),
    "scope": "web openid api id",
    "instance_url": "https://yourInstance.salesforce.com",
    "id": "https://yourInstance.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS",
    "token_type": "Bearer",
}
# The refusal the JWT bearer flow documents for a wrong `aud` (same page, "errors").
TOKEN_AUDIENCE_REFUSED = {"error": "invalid_grant", "error_description": "audience is invalid"}

# -- Limits header ----------------------------------------------------------------------------
# f"{REST}/headers_api_usage.htm"
LIMIT_INFO = "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)"

# -- Query ------------------------------------------------------------------------------------
# f"{REST}/dome_query.htm" (first batch of a large result, then the last)
QUERY_FIRST_BATCH: dict[str, Any] = {
    "done": False,
    "totalSize": 2014,
    "nextRecordsUrl": "/services/data/v59.0/query/01gD0000002HU6KIAW-2000",
    "records": [
        {
            "attributes": {
                "type": "Account",
                "url": "/services/data/v59.0/sobjects/Account/001D000000IRFmaIAH",
            },
            "Name": "Test 1",
        },
        {
            "attributes": {
                "type": "Account",
                "url": "/services/data/v59.0/sobjects/Account/001D000000IomazIAB",
            },
            "Name": "Test 2",
        },
    ],
}
QUERY_LAST_BATCH: dict[str, Any] = {
    "done": True,
    "totalSize": 2014,
    "records": [
        {
            "attributes": {
                "type": "Account",
                "url": "/services/data/v59.0/sobjects/Account/001D000000IRFmbIAH",
            },
            "Name": "Test 2001",
        }
    ],
}

# -- Errors -----------------------------------------------------------------------------------
# f"{REST}/errorcodes.htm" (the error body layout: a list of message/errorCode/fields)
ERROR_MALFORMED_ID = [
    {
        "fields": ["Id"],
        "message": "Account ID: id value of incorrect type: 001900K0001pPuOAAU",
        "errorCode": "MALFORMED_ID",
    }
]

# -- Composite --------------------------------------------------------------------------------
# f"{REST}/responses_composite.htm": a subrequest that succeeded and one that failed
COMPOSITE_CREATED = {
    "body": {"id": "001R00000033I6AIAU", "success": True, "errors": []},
    "httpHeaders": {"Location": "/services/data/v38.0/sobjects/Account/001R00000033I6AIAU"},
    "httpStatusCode": 201,
    "referenceId": "refAccount",
}
COMPOSITE_FAILED = {
    "body": [
        {
            "message": "Email: invalid email address: Not a real email address",
            "errorCode": "INVALID_EMAIL_ADDRESS",
            "fields": ["Email"],
        }
    ],
    "httpHeaders": {},
    "httpStatusCode": 400,
    "referenceId": "badContact",
}

# -- sObject collections ----------------------------------------------------------------------
# f"{REST}/resources_composite_sobjects_collections_create.htm" (allOrNone false, one refused)
COLLECTION_CREATE_RESULTS = [
    {"id": "001RM000003oLnnYAE", "success": True, "errors": []},
    {
        "success": False,
        "errors": [
            {
                "statusCode": "DUPLICATES_DETECTED",
                "message": "Use one of these records?",
                "fields": [],
            }
        ],
    },
]
# f"{REST}/resources_composite_sobjects_collections_update.htm"
COLLECTION_UPDATE_RESULTS = [
    {"id": "001RM000003oCprYAE", "success": True, "errors": []},
    {
        "success": False,
        "errors": [
            {
                "statusCode": "MALFORMED_ID",
                "message": "Contact ID: id value of incorrect type: 001xx000003DGb2AAG",
                "fields": ["Id"],
            }
        ],
    },
]
# f"{REST}/resources_composite_sobjects_collections_upsert.htm"
COLLECTION_UPSERT_RESULTS = [
    {"id": "001xx000003DGb2AAG", "success": True, "errors": [], "created": True},
    {"id": "001xx000003DGb3AAG", "success": True, "errors": [], "created": False},
]

"""Autotask's entity rules, as one table with the source of each rule.

Autotask publishes no OpenAPI file we can store (shared/APIS.md §4.8), so this table is the written
record of what a real zone accepts for the entities trueup reads and writes: the routes (root and
child), each field's type, whether it is required on create, read-only (never writable),
create-only (writable on create, read-only on update), its maximum length, and its picklist where
the value matters. The sandbox (`engine.sandbox.autotask`) enforces exactly this table; the
connector takes its field lengths from it. Sources, cited per rule:

- [doc <page>]   Autotask developer help, REST entity pages (autotask.net/help/DeveloperHelp/
                 Content/APIs/REST/Entities/<Entity>Entity.htm) and REST_API_Calls.htm.
- [swagger]      the route list of Autotask's REST swagger, as stored in api-evangelist/kaseya
                 `collections/kaseya-autotask-psa-openapi-original.opencollection.json`
                 (3,009 operations; e.g. `POST /V1.0/Contracts/{parentId}/Services`).
- [anteris]      Anteris-Dev/autotask-client, generated from a zone's `entityInformation/fields`
                 (a non-nullable property = `isRequired`; routes in `src/API/*/*Service.php`).
- [ecit]         ecitsolutions/Autotask (PowerShell, generated from the SOAP getFieldInfo of the
                 same database fields): `ValidateLength(0,N)` = the field's length, `Mandatory` =
                 required, a field absent from `Set-Atws<Entity>` = read-only on update.
- [models]       panoramicdata/AutoTask.Psa.Api models (field names of the REST swagger).
- [atrest]       aenichols/ATREST-CSharp-Client `docs/<Entity>Model.md` (swagger-codegen output
                 of the REST swagger: the complete property list of each model).
- ASSUMED        not confirmed by a source; the sandbox still enforces it (the stricter reading).

Field names are matched case-insensitively by the sandbox, as Autotask's JSON binding does
(ASSUMED: ASP.NET Web API default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

FieldType = Literal["int", "decimal", "str", "bool", "datetime", "date"]


@dataclass(frozen=True)
class FieldRule:
    type: FieldType
    source: str
    required: bool = False  # must be present (non-null) on create
    read_only: bool = False  # refused on create and on update
    create_only: bool = False  # writable on create only; refused on update
    max_length: int | None = None
    picklist: frozenset[int] | None = None


@dataclass(frozen=True)
class EntityRule:
    name: str
    source: str
    query: bool  # `POST /{name}/query`, `GET /{name}/query?search=`, `GET /{name}/{id}`
    create: str | None = None  # route of a create (relative to /v1.0/)
    update: str | None = None  # route of a PATCH
    fields: Mapping[str, FieldRule] = field(default_factory=dict)
    # business rules checked besides the field rules (documented in prose by the sandbox)
    notes: tuple[str, ...] = ()

    def field(self, name: str) -> tuple[str, FieldRule] | None:
        lowered = name.lower()
        for key, rule in self.fields.items():
            if key.lower() == lowered:
                return key, rule
        return None


def _f(type_: FieldType, source: str, **kw: object) -> FieldRule:
    return FieldRule(type_, source, **kw)  # type: ignore[arg-type]  # the table's keyword arguments are FieldRule's own (checked by its tests)


RO = {"read_only": True}

ENTITIES: dict[str, EntityRule] = {
    "Companies": EntityRule(
        name="Companies",
        source="[doc CompaniesEntity] [swagger POST/PATCH /V1.0/Companies]",
        query=True,
        create="Companies",
        update="Companies",
        fields={
            "id": _f("int", "[anteris]", **RO),
            "companyName": _f(
                "str", "[anteris] required; [ecit] AccountName length 100", required=True, max_length=100
            ),
            "companyType": _f("int", "[anteris] optional; picklist ASSUMED 1 = Customer"),
            "phone": _f("str", "[anteris] required; [ecit] Phone length 25", required=True, max_length=25),
            "ownerResourceID": _f("int", "[anteris] required; [ecit] Mandatory", required=True),
            "isActive": _f("bool", "[anteris]"),
        },
    ),
    "Services": EntityRule(
        name="Services",
        source="[doc ServicesEntity] [swagger]; create: [ecit] New-AtwsService (required Name, "
        "UnitPrice, PeriodType, AllocationCodeID = REST billingCodeID); the root POST /V1.0/Services "
        "route is ASSUMED (as Companies)",
        query=True,
        create="Services",
        fields={
            "id": _f("int", "[anteris]", **RO),
            "name": _f(
                "str", "[anteris] required; [ecit] ValidateLength(0,150)", required=True, max_length=150
            ),
            "description": _f("str", "[ecit] service_description ValidateLength(0,400)", max_length=400),
            "billingCodeID": _f(
                "int",
                "[anteris] required (a Recurring Contract Service billing code); [ecit] AllocationCodeID Mandatory",
                required=True,
            ),
            "periodType": _f(
                "int",
                "[anteris] required; [ecit] Mandatory; picklist ASSUMED 1 Monthly … 4 Yearly",
                required=True,
                picklist=frozenset({1, 2, 3, 4}),
            ),
            "unitPrice": _f("decimal", "[anteris] required; [ecit] Mandatory", required=True),
            "unitCost": _f("decimal", "[anteris]; [ecit] optional"),
            "invoiceDescription": _f("str", "[anteris]; [ecit] ValidateLength(0,1000)", max_length=1000),
            "isActive": _f("bool", "[anteris]; [ecit] optional"),
            # The Service's own SKU (issue 13): [anteris] src/API/Services/ServiceEntity.php, generated
            # from a zone's entityInformation/fields, carries `sku` (optional, writable; beside
            # catalogNumberPartNumber and manufacturerServiceProviderProductNumber, which trueup does
            # not use); the SOAP-era [ecit] Service has none. Length ASSUMED 50 (not published).
            "sku": _f("str", "[anteris] optional, writable; length ASSUMED 50", max_length=50),
        },
    ),
    "Contracts": EntityRule(
        name="Contracts",
        source="[doc ContractsEntity] [swagger]",
        query=True,
        fields={
            "id": _f("int", "[anteris]", **RO),
            "companyID": _f("int", "[anteris] required", required=True),
            "contractName": _f("str", "[anteris] required", required=True),
            "contractType": _f(
                "int", "[anteris] required; 7 = Recurring Service [doc ContractServicesEntity]", required=True
            ),
            "contractPeriodType": _f(
                "int", "[anteris]; picklist ASSUMED 1 Monthly, 2 Quarterly, 3 Semi-Annual, 4 Yearly"
            ),
            "status": _f("int", "[anteris] required; ASSUMED 1 = Active", required=True),
            "startDate": _f("date", "[anteris] required", required=True),
            "endDate": _f("date", "[anteris] required", required=True),
        },
    ),
    "ContractServices": EntityRule(
        name="ContractServices",
        source="[doc ContractServicesEntity]: parent Contracts; [swagger] POST/PATCH only under "
        "/V1.0/Contracts/{parentId}/Services, the root serves query and GET by id; [anteris] "
        "ContractServiceService::create posts Contracts/$contractID/Services",
        query=True,
        create="Contracts/{parentId}/Services",
        update="Contracts/{parentId}/Services",
        fields={
            "id": _f("int", "[anteris]", **RO),
            "contractID": _f(
                "int",
                "[anteris] required; must be a contractType 7 contract [doc]",
                required=True,
                create_only=True,
            ),
            "serviceID": _f("int", "[anteris] required; [ecit] Mandatory", required=True, create_only=True),
            # The writable price (issue 14). [doc ContractServicesEntity] (REST page): "On Update(), all
            # fields are Read-Only except for adjustedPrice and invoiceDescription", and "the entity
            # specifies an adjustedPrice". No REST model has a field of that name: the swagger-generated
            # ContractServiceModel [atrest] and the zone field list [anteris] both list exactly id,
            # contractID, serviceID, unitPrice, unitCost, internalCurrencyAdjustedPrice,
            # internalCurrencyUnitPrice, invoiceDescription, internalDescription, quoteItemID (+ UDFs).
            # The internalCurrency* pair is the saved internal-currency copy Autotask computes (the REST
            # pages' multi-currency note, e.g. [doc ContractRatesEntity]: "will return the saved Internal
            # Currency values"), so the customer-currency price the doc calls adjustedPrice is
            # `unitPrice` — the SOAP entity's writable AdjustedPrice [ecit Set-AtwsContractService lists
            # AdjustedPrice, not UnitPrice], renamed. Both internalCurrency* fields are read-only, and
            # `adjustedPrice` itself is an unknown field (400) like any name outside the model.
            "unitPrice": _f(
                "decimal",
                "[atrest] [anteris] [models]; the adjusted price, writable on update [doc "
                "ContractServicesEntity, named adjustedPrice there]",
            ),
            "unitCost": _f("decimal", "[anteris]; read-only on update [doc]", create_only=True),
            "internalCurrencyAdjustedPrice": _f(
                "decimal",
                "[atrest] [models] the saved internal-currency adjusted price, computed [doc]",
                **RO,
            ),
            "internalCurrencyUnitPrice": _f(
                "decimal", "[atrest] [models] the saved internal-currency price, computed [doc]", **RO
            ),
            "invoiceDescription": _f("str", "[ecit] length 1000; writable on update [doc]", max_length=1000),
            "internalDescription": _f(
                "str",
                "[ecit] New-AtwsContractService ValidateLength(0,100); read-only on "
                "update [doc] (SOAP Set-AtwsContractService lists it: conflicting)",
                create_only=True,
                max_length=100,
            ),
            "quoteItemID": _f("int", "[anteris]", create_only=True),
        },
        notes=(
            "contractID must reference a Recurring Service (type 7) contract [doc ContractServicesEntity]",
        ),
    ),
    "ContractServiceAdjustments": EntityRule(
        name="ContractServiceAdjustments",
        source="[doc ContractServiceAdjustmentsEntity]: create only, cannot be queried or updated, parent "
        "Contracts; [swagger] POST /V1.0/Contracts/{parentId}/ServiceAdjustments (and the root "
        "POST /V1.0/ContractServiceAdjustments); [anteris] posts Contracts/$contractID/ServiceAdjustments",
        query=False,
        create="Contracts/{parentId}/ServiceAdjustments",
        fields={
            "id": _f("int", "[anteris]", **RO),
            "contractID": _f("int", "[anteris]; the parent [swagger]"),
            "contractServiceID": _f("int", "[anteris]"),
            "serviceID": _f("int", "[anteris]; the ContractService is created when missing [doc]"),
            "effectiveDate": _f(
                "date",
                "[anteris] required; [ecit] Mandatory; a date-only field: the date is "
                "kept as written, time set to midnight [doc REST_API_Calls]",
                required=True,
            ),
            "unitChange": _f(
                "int", "[anteris] integer; required ASSUMED (an adjustment is a units delta)", required=True
            ),
            "adjustedUnitPrice": _f("decimal", "[anteris] [doc: may be negative]"),
            "adjustedUnitCost": _f("decimal", "[anteris]"),
            "allowRepeatService": _f("bool", "[anteris]"),
            "quoteItemID": _f("int", "[anteris]"),
        },
        notes=(
            "units may never fall below 0 (ASSUMED)",
            "effectiveDate on or after the contract start (ASSUMED)",
        ),
    ),
    "ContractServiceUnits": EntityRule(
        name="ContractServiceUnits",
        source="[doc ContractServiceUnitsEntity] query only; [swagger] query and GET by id",
        query=True,
        fields={
            "id": _f("int", "[anteris]", **RO),
            "contractID": _f("int", "[anteris]", **RO),
            "contractServiceID": _f("int", "[anteris]", **RO),
            "serviceID": _f("int", "[anteris]", **RO),
            "startDate": _f("date", "[anteris]", **RO),
            "endDate": _f("date", "[anteris]", **RO),
            "units": _f("int", "[anteris]", **RO),
            "price": _f("decimal", "[anteris]", **RO),
            "cost": _f("decimal", "[anteris]", **RO),
            "approveAndPostDate": _f("datetime", "[anteris] set once invoiced", **RO),
        },
    ),
    "BillingItems": EntityRule(
        name="BillingItems",
        source="[ecit] Get-AtwsBillingItem / Set-AtwsBillingItem (the approved and posted items an "
        "invoice bills; every field but the approver read-only); the REST name BillingItems and "
        "camelCase field names as the other entities (AccountID = companyID, as Companies' "
        "AccountName = companyName) ASSUMED; query only, as ContractServiceUnits",
        query=True,
        fields={
            "id": _f("int", "[ecit] BillingItemID", **RO),
            "itemName": _f("str", "[ecit] ItemName ValidateLength(0,255)", max_length=255, **RO),
            "description": _f("str", "[ecit] Description ValidateLength(0,2000)", max_length=2000, **RO),
            "quantity": _f("decimal", "[ecit] Quantity", **RO),
            "rate": _f("decimal", "[ecit] Rate", **RO),
            "extendedPrice": _f("decimal", "[ecit] ExtendedPrice", **RO),
            "totalAmount": _f("decimal", "[ecit] TotalAmount", **RO),
            "itemDate": _f("datetime", "[ecit] ItemDate", **RO),
            "postedDate": _f("datetime", "[ecit] Posted Date", **RO),
            "invoiceID": _f("int", "[ecit] InvoiceID (set once invoiced)", **RO),
            "companyID": _f("int", "[ecit] AccountID", **RO),
            "contractID": _f("int", "[ecit] ContractID", **RO),
            "contractServiceID": _f("int", "[ecit] ContractServiceID", **RO),
            "serviceID": _f("int", "[ecit] ServiceID", **RO),
        },
    ),
    "ContractCharges": EntityRule(
        name="ContractCharges",
        source="[doc ContractChargesEntity]: parent Contracts, update/delete only while isBilled = false; "
        "[swagger] POST/PATCH only under /V1.0/Contracts/{parentId}/Charges, the root serves query "
        "and GET by id; [anteris] posts Contracts/$contractID/Charges",
        query=True,
        create="Contracts/{parentId}/Charges",
        update="Contracts/{parentId}/Charges",
        fields={
            "id": _f("int", "[anteris]", **RO),
            "contractID": _f(
                "int", "[ecit] Mandatory; the parent [swagger]", required=True, create_only=True
            ),
            "name": _f("str", "[anteris] required; [ecit] length 100", required=True, max_length=100),
            "description": _f("str", "[ecit] length 2000", max_length=2000),
            "chargeType": _f(
                "int",
                "[anteris] required; [ecit] CostType Mandatory; picklist ASSUMED 1 "
                "Operational, 2 Capitalized",
                required=True,
                picklist=frozenset({1, 2}),
            ),
            "datePurchased": _f("date", "[anteris] required; [ecit] Mandatory", required=True),
            "unitQuantity": _f("decimal", "[anteris] required; [ecit] Mandatory", required=True),
            "unitPrice": _f("decimal", "[anteris]"),
            "unitCost": _f("decimal", "[anteris]"),
            "billingCodeID": _f("int", "[anteris]; one of billingCodeID/productID is required [doc]"),
            "productID": _f("int", "[anteris]; one of billingCodeID/productID is required [doc]"),
            "contractServiceID": _f("int", "[anteris]"),
            "contractServiceBundleID": _f("int", "[anteris]"),
            "isBillableToCompany": _f("bool", "[anteris]"),
            "internalPurchaseOrderNumber": _f(
                "str", "[ecit] length 50; updatable [ecit Set-AtwsContractCost]", max_length=50
            ),
            "purchaseOrderNumber": _f("str", "[ecit] length 50", max_length=50),
            "notes": _f("str", "[ecit] length 2000; updatable", max_length=2000),
            "organizationalLevelAssociationID": _f("int", "[anteris]"),
            "status": _f("int", "read-only: absent from [ecit] Set-AtwsContractCost; issue 10", **RO),
            "statusLastModifiedBy": _f("int", "[ecit] not in Set-", **RO),
            "statusLastModifiedDate": _f("datetime", "[ecit] not in Set-", **RO),
            "isBilled": _f("bool", "[ecit] not in Set-; set by Approve and Post", **RO),
            "billableAmount": _f("decimal", "[doc] = unitQuantity × unitPrice", **RO),
            "extendedCost": _f("decimal", "[ecit] not in Set-", **RO),
            "internalCurrencyBillableAmount": _f("decimal", "[doc] multi-currency", **RO),
            "internalCurrencyUnitPrice": _f("decimal", "[doc] multi-currency", **RO),
            "createDate": _f("datetime", "[ecit] not in Set-", **RO),
            "creatorResourceID": _f("int", "[ecit] not in Set-", **RO),
        },
        notes=(
            "a ContractCharge must have either a productID or a billingCodeID [doc ContractChargesEntity]",
        ),
    ),
}

# Entities served under /V1.0/ with nothing else modelled by the sandbox.
THRESHOLD_ROUTE = "ThresholdInformation"  # [swagger] GET /V1.0/ThresholdInformation
# ThresholdStatusResultModel: externalRequestThreshold, requestThresholdTimeframe (minutes),
# currentTimeframeRequestCount [models ThresholdStatusResultModel; client tphakala/go-autotask
# middleware/threshold.go].

HOURLY_REQUEST_THRESHOLD = (
    10_000  # per rolling hour per database, all integrations [doc REST_Thresholds_Limits]
)
THRESHOLD_TIMEFRAME_MINUTES = 60

CHILD_ROUTES: dict[str, str] = {
    "Services": "ContractServices",
    "Charges": "ContractCharges",
    "ServiceAdjustments": "ContractServiceAdjustments",
}  # [swagger] Contracts/{id}/…


def max_length(entity: str, name: str) -> int:
    rule = ENTITIES[entity].fields[name]
    assert rule.max_length is not None
    return rule.max_length


__all__ = ["CHILD_ROUTES", "ENTITIES", "EntityRule", "FieldRule", "HOURLY_REQUEST_THRESHOLD", "max_length"]
